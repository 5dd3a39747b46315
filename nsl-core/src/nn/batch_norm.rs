use super::{BatchNormOp, Cache, InferenceOp, Layer, Mode, Stats};
use crate::{Backend, BatchNormDims, Gemm, Param, Role, Tensor};

/// Batch norm over the channel (last) axis, as the reference code (spec §1):
/// with batch statistics ([`Stats::Batch`], training) `y = γ·(x−μ_B)/sqrt(σ²_B+ε) + β` with the
/// biased batch variance, and the running statistics are an EMA `s ← d·s + (1−d)·batch` whose
/// shadows start at **0** (TF `ExponentialMovingAverage`, no bias correction); with running
/// statistics ([`Stats::Running`], inference, or fine-tuning through a frozen network with
/// [`Mode::ADAPT`]) the shadows replace `μ_B`, `σ²_B` and the layer is affine in `x`. With
/// [`BatchNorm::with_relu`] the layer is batch norm followed by ReLU, `max(y, 0)`, in one
/// fused backend op.
pub struct BatchNorm<B: Backend> {
    name: String,
    /// Whether a ReLU follows (fused): see [`BatchNorm::with_relu`].
    pub relu: bool,
    pub eps: f32,
    pub ema_decay: f32,
    pub gamma: Param<B>,
    pub beta: Param<B>,
    pub running_mean: Param<B>,
    pub running_var: Param<B>,
    /// Number of EMA updates so far (one value), so a trainer can debias the shadows
    /// (`s / (1 − d^count)`) for evaluations early in a run.
    pub ema_count: Param<B>,
    cache: Cache<BnCache<B>>,
}

struct BnCache<B: Backend> {
    /// Which statistics the forward used (and so which backward applies).
    stats: Stats,
    x: Tensor<B>,
    mean: Tensor<B>,
    var: Tensor<B>,
    /// The output, for the ReLU's mask (only with `relu`).
    y: Option<Tensor<B>>,
}

impl<B: Backend> BatchNorm<B> {
    /// The reference code's EMA decay, 0.999.
    pub const DEFAULT_EMA_DECAY: f32 = 0.999;
    /// `c` channels, `eps` (the code uses 1e-3), L2 `weight_decay` on γ and β (code: 5e-4).
    pub fn new(be: &B, name: &str, c: usize, eps: f32, weight_decay: f32) -> Self {
        let scale = Role::BnScale { predictor_output: false };
        BatchNorm {
            name: name.into(),
            relu: false,
            eps,
            ema_decay: Self::DEFAULT_EMA_DECAY,
            gamma: Param::new(be, format!("{name}.gamma"), scale, Tensor::from_vec(be, &[c], &vec![1.0; c]))
                .with_decay(weight_decay),
            beta: Param::new(be, format!("{name}.beta"), Role::BnShift, Tensor::zeros(be, &[c]))
                .with_decay(weight_decay),
            running_mean: Param::buffer(be, format!("{name}.running_mean"), Role::RunningMean, Tensor::zeros(be, &[c])),
            running_var: Param::buffer(be, format!("{name}.running_var"), Role::RunningVar, Tensor::zeros(be, &[c])),
            ema_count: Param::buffer(be, format!("{name}.ema_count"), Role::EmaCount, Tensor::zeros(be, &[1])),
            cache: Cache::default(),
        }
    }
    /// The same layer followed by ReLU, `max(BN(x), 0)`, run as one fused backend op
    /// ([`Backend::batch_norm_train`] with [`BatchNormDims::relu`], and its backward): the same parameters and
    /// checkpoints as `BatchNorm` then `Relu`, one pass less over the activations each way.
    ///
    /// ```
    /// use nsl_core::nn::{BatchNorm, Layer, Mode};
    /// use nsl_core::Tensor;
    /// use nsl_cpu::Cpu;
    ///
    /// let be = Cpu::with_threads(1);
    /// let mut bn = BatchNorm::new(&be, "bn", 2, 1e-3, 0.0).with_relu();
    /// let x = Tensor::from_vec(&be, &[2, 2], &[1.0, -3.0, 3.0, -1.0]);
    /// // per channel x̂ = ±1 (up to eps); the ReLU keeps the positive half
    /// let y = bn.forward(&be, &x, Mode::TRAIN).to_vec(&be);
    /// assert!(y[0] == 0.0 && y[1] == 0.0 && y[2] > 0.99 && y[3] > 0.99);
    /// ```
    pub fn with_relu(mut self) -> Self {
        self.relu = true;
        self
    }

    /// The EMA count [`BatchNorm::debias_running_statistics`] leaves: `d^1e6` is 0 in `f32`
    /// for every decay up to 0.9999.
    pub const DEBIASED_COUNT: f32 = 1e6;

    /// Divide the running statistics by `1 − d^n` (`n` EMA updates so far, `d` the EMA decay),
    /// so that they estimate the statistics rather than a zero-started EMA of them, and set `n`
    /// to [`BatchNorm::DEBIASED_COUNT`], where `1 − d^n = 1`: a second call changes nothing.
    /// A layer with no update yet is left alone.
    pub fn debias_running_statistics(&mut self, be: &B) {
        let n = self.ema_count.value.to_vec(be)[0];
        if n > 0.0 && n < Self::DEBIASED_COUNT {
            let factor = 1.0 / (1.0 - self.ema_decay.powf(n));
            be.scale(factor, self.running_mean.value.buf_mut());
            be.scale(factor, self.running_var.value.buf_mut());
            be.fill(self.ema_count.value.buf_mut(), Self::DEBIASED_COUNT);
        }
    }

    /// The running statistics and EMA count `(mean, var, count)`, e.g. to put them back after
    /// an evaluation on debiased copies.
    pub fn running_statistics(&self) -> [&Tensor<B>; 3] {
        [&self.running_mean.value, &self.running_var.value, &self.ema_count.value]
    }

    /// Replace the running statistics and EMA count, returning the old ones.
    pub fn replace_running_statistics(&mut self, [mean, var, count]: [Tensor<B>; 3]) -> [Tensor<B>; 3] {
        [
            std::mem::replace(&mut self.running_mean.value, mean),
            std::mem::replace(&mut self.running_var.value, var),
            std::mem::replace(&mut self.ema_count.value, count),
        ]
    }

    /// Backward with fixed (running) statistics `μ`, `σ²`, where the layer is affine per channel:
    /// with `dz = dy·1[y > 0]` (`dy` without the ReLU) and `x̂ = (x−μ)/sqrt(σ²+ε)`,
    /// `dβ += Σ_rows dz`, `dγ += Σ_rows dz·x̂`, `dx = dz·γ/sqrt(σ²+ε)`.
    fn backward_running(&mut self, be: &B, cache: &BnCache<B>, dy: &Tensor<B>) -> Tensor<B> {
        let BnCache { x, mean, var, y, .. } = cache;
        let d = BatchNormDims { relu: false, ..self.dims(x) };
        let dz = match y {
            Some(y) => {
                let mut dz = dy.empty_like(be);
                be.relu_backward(y.buf(), dy.buf(), dz.buf_mut());
                dz
            }
            None => dy.clone(),
        };
        let ones = Tensor::from_vec(be, &[d.c], &vec![1.0; d.c]);
        let mut x_hat = x.empty_like(be);
        be.batch_norm_eval(
            &d,
            x.buf(),
            ones.buf(),
            Tensor::zeros(be, &[d.c]).buf(),
            mean.buf(),
            var.buf(),
            x_hat.buf_mut(),
        );
        let mut dgamma = Tensor::zeros(be, &[d.c]);
        be.dot_cols(dz.buf(), x_hat.buf(), d.rows, d.c, dgamma.buf_mut());
        be.axpy(1.0, dgamma.buf(), self.gamma.grad.buf_mut());
        let ones_rows = be.upload(&vec![1.0; d.rows]);
        be.gemm(&Gemm::new(1, d.c, d.rows).scaled(1.0, 1.0), &ones_rows, dz.buf(), self.beta.grad.buf_mut());
        let (gamma, var) = (self.gamma.value.to_vec(be), var.to_vec(be));
        let scale: Vec<f32> = gamma.iter().zip(&var).map(|(g, v)| g / (v + self.eps).sqrt()).collect();
        let mut dx = x.empty_like(be);
        be.mul_cols(dz.buf(), Tensor::from_vec(be, &[d.c], &scale).buf(), d.rows, d.c, dx.buf_mut());
        dx
    }

    /// The same layer as the output of a dynamic similarity's predictor: its `γ` takes the role
    /// [`Role::BnScale`] `{ predictor_output: true }`.
    pub fn predictor_output(mut self) -> Self {
        self.gamma.role = Role::BnScale { predictor_output: true };
        self
    }

    fn dims(&self, x: &Tensor<B>) -> BatchNormDims {
        let c = self.gamma.value.numel();
        assert_eq!(x.shape().last(), Some(&c), "{}: input {:?} does not end in {c} channels", self.name, x.shape());
        BatchNormDims { rows: x.numel() / c, c, eps: self.eps, relu: self.relu }
    }
}

impl<B: Backend> Layer<B> for BatchNorm<B> {
    fn name(&self) -> String {
        self.name.clone()
    }
    fn forward(&mut self, be: &B, x: &Tensor<B>, mode: Mode) -> Tensor<B> {
        let d = self.dims(x);
        let mut y = x.empty_like(be);
        let (gamma, beta) = (self.gamma.value.buf(), self.beta.value.buf());
        let (mean, var) = match mode.stats {
            Stats::Running => {
                let (mean, var) = (&self.running_mean.value, &self.running_var.value);
                be.batch_norm_eval(&d, x.buf(), gamma, beta, mean.buf(), var.buf(), y.buf_mut());
                if mode.record {
                    // copies for the backward: a training forward updates the shadows in place
                    (mean.duplicate(be), var.duplicate(be))
                } else {
                    (mean.clone(), var.clone())
                }
            }
            Stats::Batch => {
                let mut mean = Tensor::zeros(be, &[d.c]);
                let mut var = Tensor::zeros(be, &[d.c]);
                let (m, v) = (mean.buf_mut(), var.buf_mut());
                be.batch_norm_train(&d, x.buf(), gamma, beta, y.buf_mut(), m, v);
                for (shadow, batch) in [(&mut self.running_mean, &mean), (&mut self.running_var, &var)] {
                    be.scale(self.ema_decay, shadow.value.buf_mut());
                    be.axpy(1.0 - self.ema_decay, batch.buf(), shadow.value.buf_mut());
                }
                let count = self.ema_count.value.to_vec(be)[0] + 1.0;
                be.fill(self.ema_count.value.buf_mut(), count);
                (mean, var)
            }
        };
        if mode.record {
            let y_cached = self.relu.then(|| y.clone());
            self.cache.push(BnCache { stats: mode.stats, x: x.clone(), mean, var, y: y_cached });
        }
        y
    }
    fn backward(&mut self, be: &B, dy: &Tensor<B>) -> Tensor<B> {
        let cache = self.cache.pop(&self.name);
        if cache.stats == Stats::Running {
            return self.backward_running(be, &cache, dy);
        }
        let BnCache { x, mean, var, y, .. } = cache;
        let d = self.dims(&x);
        let mut dx = x.empty_like(be);
        let (gamma, beta) = (self.gamma.value.buf(), self.beta.value.buf());
        let (dgamma, dbeta) = (self.gamma.grad.buf_mut(), self.beta.grad.buf_mut());
        let (mean, var, y) = (mean.buf(), var.buf(), y.as_ref().map(|y| y.buf()));
        be.batch_norm_backward(&d, x.buf(), gamma, beta, mean, var, y, dy.buf(), dx.buf_mut(), dgamma, dbeta);
        dx
    }
    fn visit_params(&mut self, f: &mut dyn FnMut(&mut Param<B>)) {
        f(&mut self.gamma);
        f(&mut self.beta);
        f(&mut self.running_mean);
        f(&mut self.running_var);
        f(&mut self.ema_count);
    }
    fn visit_batch_norms(&mut self, f: &mut dyn FnMut(&mut BatchNorm<B>)) {
        f(self)
    }
    fn inference_graph(&mut self, be: &B) -> Result<Vec<InferenceOp>, String> {
        Ok(vec![InferenceOp::BatchNorm(BatchNormOp {
            name: self.name.clone(),
            eps: self.eps,
            relu: self.relu,
            gamma: self.gamma.value.to_vec(be),
            beta: self.beta.value.to_vec(be),
            mean: self.running_mean.value.to_vec(be),
            var: self.running_var.value.to_vec(be),
        })])
    }
}
