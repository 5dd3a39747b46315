//! N-way K-shot episodes (spec §5.6) and the 95% confidence interval of their mean accuracy.

use nsl_core::Rng;

use crate::data::augment::Normalize;
use crate::data::Dataset;
use crate::Error;

/// The shape of an episode: `way` classes, `shot` labelled support images and `queries` query
/// images per class. The paper's protocol is 5-way 5-shot with 15 queries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EpisodeSpec {
    pub way: usize,
    pub shot: usize,
    pub queries: usize,
}

impl EpisodeSpec {
    /// 5-way `shot`-shot with 15 queries per class (spec §5.6).
    pub fn paper(shot: usize) -> Self {
        EpisodeSpec { way: 5, shot, queries: 15 }
    }
}

/// One episode: image indices into the sampler's [`Dataset`] with labels remapped to `0..way`.
///
/// Support and query are class-major (`shot` resp. `queries` images of episode class 0, then of
/// class 1, …); episode class `i` is dataset class `classes[i]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Episode {
    /// Dataset label of each episode class, in episode-label order.
    pub classes: Vec<usize>,
    pub support: Vec<usize>,
    pub support_labels: Vec<usize>,
    pub query: Vec<usize>,
    pub query_labels: Vec<usize>,
}

/// Normalised NHWC images of an episode split, ready to upload: `images` is `shape = [n, h, w, c]`.
#[derive(Clone, Debug, PartialEq)]
pub struct HostBatch {
    pub images: Vec<f32>,
    pub labels: Vec<usize>,
    pub shape: [usize; 4],
}

impl HostBatch {
    /// The images `indices` of `data`, normalised, with the given (episode) labels.
    pub fn gather(data: &Dataset, indices: &[usize], labels: &[usize], normalize: &Normalize) -> Self {
        assert_eq!(indices.len(), labels.len(), "one label per image");
        let n = data.image_len();
        let [h, w, c] = data.shape;
        let mut images = vec![0f32; indices.len() * n];
        for (out, &i) in images.chunks_exact_mut(n).zip(indices) {
            normalize.apply(data.image(i), c, out);
        }
        HostBatch { images, labels: labels.to_vec(), shape: [indices.len(), h, w, c] }
    }
}

impl Episode {
    /// The support set of `data` as a normalised batch.
    pub fn support_batch(&self, data: &Dataset, normalize: &Normalize) -> HostBatch {
        HostBatch::gather(data, &self.support, &self.support_labels, normalize)
    }
    /// The query set of `data` as a normalised batch.
    pub fn query_batch(&self, data: &Dataset, normalize: &Normalize) -> HostBatch {
        HostBatch::gather(data, &self.query, &self.query_labels, normalize)
    }
}

/// Draws episodes from the images of a fixed set of classes of a [`Dataset`] (e.g. the 20
/// mini-ImageNet test classes).
#[derive(Clone, Debug)]
pub struct EpisodeSampler {
    classes: Vec<usize>,
    /// `members[i]`: indices of the images of `classes[i]`, ascending.
    members: Vec<Vec<usize>>,
}

impl EpisodeSampler {
    /// A sampler over the images of `data` whose label is in `classes`.
    ///
    /// # Errors
    /// If `classes` is empty, repeats a class or names a class `≥ data.classes`.
    pub fn new(data: &Dataset, classes: &[usize]) -> Result<Self, Error> {
        if classes.is_empty() {
            return Err(Error::FewShot("an episode sampler needs at least one class".into()));
        }
        let mut position = vec![usize::MAX; data.classes];
        for (i, &c) in classes.iter().enumerate() {
            if c >= data.classes {
                return Err(Error::FewShot(format!(
                    "class {c} is out of range for {} ({} classes)",
                    data.name, data.classes
                )));
            }
            if position[c] != usize::MAX {
                return Err(Error::FewShot(format!("class {c} is listed twice")));
            }
            position[c] = i;
        }
        let mut members = vec![Vec::new(); classes.len()];
        for i in 0..data.len() {
            if let Some(slot) = members.get_mut(position[data.label(i)]) {
                slot.push(i);
            }
        }
        Ok(EpisodeSampler { classes: classes.to_vec(), members })
    }

    /// The classes episodes are drawn from.
    pub fn classes(&self) -> &[usize] {
        &self.classes
    }

    /// Episode `index` of stream `seed`, a pure function of `(seed, index)`: `Rng::new(seed)
    /// .fork(index)` picks `way` distinct classes (their order gives the episode labels), then
    /// `shot + queries` distinct images of each; the first `shot` are support, the rest query,
    /// so no image is in both.
    ///
    /// # Errors
    /// If there are fewer than `way` classes or a picked class has fewer than `shot + queries` images.
    pub fn sample(&self, spec: EpisodeSpec, seed: u64, index: u64) -> Result<Episode, Error> {
        let EpisodeSpec { way, shot, queries } = spec;
        if way > self.classes.len() {
            return Err(Error::FewShot(format!(
                "a {way}-way episode needs {way} classes; the sampler has {}",
                self.classes.len()
            )));
        }
        let mut rng = Rng::new(seed).fork(index);
        let picked = partial_shuffle(&mut rng, (0..self.classes.len()).collect(), way);
        let mut episode = Episode {
            classes: picked.iter().map(|&i| self.classes[i]).collect(),
            support: Vec::with_capacity(way * shot),
            support_labels: Vec::with_capacity(way * shot),
            query: Vec::with_capacity(way * queries),
            query_labels: Vec::with_capacity(way * queries),
        };
        for (label, &i) in picked.iter().enumerate() {
            let pool = &self.members[i];
            if pool.len() < shot + queries {
                return Err(Error::FewShot(format!(
                    "class {} has {} images; a {shot}-shot episode with {queries} queries needs {}",
                    self.classes[i],
                    pool.len(),
                    shot + queries
                )));
            }
            let images = partial_shuffle(&mut rng, pool.clone(), shot + queries);
            episode.support.extend_from_slice(&images[..shot]);
            episode.query.extend_from_slice(&images[shot..]);
            episode.support_labels.extend(std::iter::repeat_n(label, shot));
            episode.query_labels.extend(std::iter::repeat_n(label, queries));
        }
        Ok(episode)
    }
}

/// The first `k` items of a uniform random permutation of `items` (Fisher–Yates, front to back).
fn partial_shuffle(rng: &mut Rng, mut items: Vec<usize>, k: usize) -> Vec<usize> {
    for i in 0..k {
        let j = i + rng.below(items.len() - i);
        items.swap(i, j);
    }
    items.truncate(k);
    items
}

/// Mean and 95% confidence half-width of per-episode accuracies, the MAML convention the paper's
/// ± values follow: `mean ± 1.96·s/√n` with the **sample** standard deviation
/// `s = sqrt(Σ (aᵢ − ā)² / (n − 1))`. With fewer than two values the half-width is reported as 0.
///
/// ```
/// let (mean, ci) = nsl_models::fewshot::mean_ci95(&[0.5, 0.7, 0.6, 0.8]);
/// assert!((mean - 0.65).abs() < 1e-6);
/// // s = sqrt(0.05 / 3), half-width = 1.96·s/2
/// assert!((ci - 1.96 * (0.05f64 / 3.0).sqrt() / 2.0).abs() < 1e-6);
/// ```
pub fn mean_ci95(values: &[f64]) -> (f64, f64) {
    let n = values.len();
    if n == 0 {
        return (f64::NAN, 0.0);
    }
    let mean = values.iter().sum::<f64>() / n as f64;
    if n < 2 {
        return (mean, 0.0);
    }
    let var = values.iter().map(|a| (a - mean) * (a - mean)).sum::<f64>() / (n - 1) as f64;
    (mean, 1.96 * var.sqrt() / (n as f64).sqrt())
}
