use super::{Cache, Layer, Mode};
use crate::{Backend, BatchNormDims, Param, Tensor};

/// Batch norm over the channel (last) axis, as the reference code (spec §1):
/// train `y = γ·(x−μ_B)/sqrt(σ²_B+ε) + β` with the biased batch variance; the running
/// statistics are an EMA `s ← d·s + (1−d)·batch` whose shadows start at **0** (TF
/// `ExponentialMovingAverage`, no bias correction); eval uses the shadows.
pub struct BatchNorm<B: Backend> {
    name: String,
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
    x: Tensor<B>,
    mean: Tensor<B>,
    var: Tensor<B>,
}

impl<B: Backend> BatchNorm<B> {
    /// The reference code's EMA decay, 0.999.
    pub const DEFAULT_EMA_DECAY: f32 = 0.999;
    /// `c` channels, `eps` (the code uses 1e-3), L2 `weight_decay` on γ and β (code: 5e-4).
    pub fn new(be: &B, name: &str, c: usize, eps: f32, weight_decay: f32) -> Self {
        BatchNorm {
            name: name.into(),
            eps,
            ema_decay: Self::DEFAULT_EMA_DECAY,
            gamma: Param::new(be, format!("{name}.gamma"), Tensor::from_vec(be, &[c], &vec![1.0; c]))
                .with_decay(weight_decay),
            beta: Param::new(be, format!("{name}.beta"), Tensor::zeros(be, &[c])).with_decay(weight_decay),
            running_mean: Param::buffer(be, format!("{name}.running_mean"), Tensor::zeros(be, &[c])),
            running_var: Param::buffer(be, format!("{name}.running_var"), Tensor::zeros(be, &[c])),
            ema_count: Param::buffer(be, format!("{name}.ema_count"), Tensor::zeros(be, &[1])),
            cache: Cache::default(),
        }
    }
    fn dims(&self, x: &Tensor<B>) -> BatchNormDims {
        let c = self.gamma.value.numel();
        assert_eq!(x.shape().last(), Some(&c), "{}: input {:?} does not end in {c} channels", self.name, x.shape());
        BatchNormDims { rows: x.numel() / c, c, eps: self.eps }
    }
}

impl<B: Backend> Layer<B> for BatchNorm<B> {
    fn name(&self) -> String {
        self.name.clone()
    }
    fn forward(&mut self, be: &B, x: &Tensor<B>, mode: Mode) -> Tensor<B> {
        let d = self.dims(x);
        let mut y = x.empty_like(be);
        match mode {
            Mode::Eval => be.batch_norm_eval(
                &d,
                x.buf(),
                self.gamma.value.buf(),
                self.beta.value.buf(),
                self.running_mean.value.buf(),
                self.running_var.value.buf(),
                y.buf_mut(),
            ),
            Mode::Train => {
                let mut mean = Tensor::zeros(be, &[d.c]);
                let mut var = Tensor::zeros(be, &[d.c]);
                be.batch_norm_train(
                    &d,
                    x.buf(),
                    self.gamma.value.buf(),
                    self.beta.value.buf(),
                    y.buf_mut(),
                    mean.buf_mut(),
                    var.buf_mut(),
                );
                for (shadow, batch) in [(&mut self.running_mean, &mean), (&mut self.running_var, &var)] {
                    be.scale(self.ema_decay, shadow.value.buf_mut());
                    be.axpy(1.0 - self.ema_decay, batch.buf(), shadow.value.buf_mut());
                }
                let count = self.ema_count.value.to_vec(be)[0] + 1.0;
                be.fill(self.ema_count.value.buf_mut(), count);
                self.cache.push(BnCache { x: x.clone(), mean, var });
            }
        }
        y
    }
    fn backward(&mut self, be: &B, dy: &Tensor<B>) -> Tensor<B> {
        let BnCache { x, mean, var } = self.cache.pop(&self.name);
        let d = self.dims(&x);
        let mut dx = x.empty_like(be);
        be.batch_norm_backward(
            &d,
            x.buf(),
            self.gamma.value.buf(),
            mean.buf(),
            var.buf(),
            dy.buf(),
            dx.buf_mut(),
            self.gamma.grad.buf_mut(),
            self.beta.grad.buf_mut(),
        );
        dx
    }
    fn visit_params(&mut self, f: &mut dyn FnMut(&mut Param<B>)) {
        f(&mut self.gamma);
        f(&mut self.beta);
        f(&mut self.running_mean);
        f(&mut self.running_var);
        f(&mut self.ema_count);
    }
}
