//! The embedded default data set: CIFAR-shaped (32×32 RGB) images drawn procedurally from a
//! seed, so every experiment runs without downloads.
//!
//! # How an image is drawn
//!
//! Each class is a *style* `(shape, texture, detail, hue)`. Colours are HSV in `[0, 1]`,
//! `u ~ U[0,1)`, `n ~ N(0,1)`; every draw comes from one [`Rng`] per image, `Rng(seed) →
//! fork(split) → fork(j)` for image `j`, so images do not depend on each other.
//!
//! 1. **Background:** colour `hsv(u, 0.35u, 0.25 + 0.5u)` times a linear ramp
//!    `1 + g·((x−16)cos α + (y−16)sin α)/16`, `g = 0.3u`, `α = 2πu` (pixel centres `x + ½`).
//! 2. **Clutter behind** (2–4 items): discs of radius 1.5–3.5 px or bars 6–14 px long and
//!    1–2 px thick, anywhere, each in a random colour `hsv(u, u, 0.2 + 0.8u)`.
//! 3. **Distractor** (probability 0.35): a small object (radius 3.5–5 px) of a random class of
//!    the same set, near a random corner (centre `(5 or 27) ± 2` px).
//! 4. **Object** of the image's class: centre `16 ± 6u` px on each axis, radius `s = 6.5 +
//!    4.5u` px, rotation `θ = 2πu`. A pixel at `p` has object coordinates
//!    `(a, b) = R(−θ)(p − centre)/s`; edges are anti-aliased with coverage `clamp(½ − s·d, 0, 1)`
//!    for the signed distance `d` below.
//!    * shape (`r = |(a, b)|`): disc `r − 0.95`; ring `|r − 0.7| − 0.22`; square
//!      `max(|a|,|b|) − 0.8`; equilateral triangle of side 1.9; cross of two 1.9×0.54 bars; three
//!      discs of radius 0.36 at radius 0.58.
//!    * colour `f = hsv(h, 0.4 + 0.5u, 0.5 + 0.5u)` with `h = hue + 0.06n`, or with probability
//!      0.3 a uniformly random `h`, so colour is only a hint.
//!    * texture, mixing `f` with `0.45f` (phases `φ, ψ = 2πu`, frequency `k`): solid; stripes
//!      `sin(kπa + φ)`; checker `sin(kπa + φ)·sin(kπb + ψ)`; dots where
//!      `cos(kπa + φ)·cos(kπb + ψ) > 0.45`.
//!    * detail, the local feature separating paired classes: none; a centre dot (radius 0.22);
//!      a notch (the slot `a > 0.3, |b| < 0.3` is cut away: a ring becomes a "C", a cross a
//!      "T"); a corner marker (square of half-side 0.2 at `(0.42, 0.42)`). Dot and marker have
//!      colour `0.35f + 0.65(1 − f)`.
//! 5. **Clutter in front** (probability 0.5): a disc of radius 1–2.5 px, half the time on the
//!    object, where it can hide a detail or mimic a centre dot.
//! 6. **Pixel noise:** `+ 14n/255` per value (`n` from an Irwin–Hall sum of four uniforms),
//!    then rounding to `u8`.
//!
//! The ten classes of [`synthetic_cifar`] are five pairs sharing shape, texture and hue and
//! differing in a local detail or the texture: striped disc / with centre dot, ring / notched
//! ring ("C"), checkered square / with corner marker, solid / striped triangle, cross / notched
//! cross ("T"). Colour and silhouette hint at the pair; only local structure tells the class
//! within it; occluding clutter makes some images ambiguous, so no model reaches 100%. A
//! nearest-class-mean classifier on raw pixels gets about 30%.
//!
//! [`synthetic_many`] draws its classes from all 960 styles (6 shapes × 5 textures × 4 details
//! × 8 hues `i/8`) in a fixed order that does not depend on the seed, so class `k` is the same
//! family in every call.

use nsl_core::Rng;

use super::Dataset;

/// Training images of the default synthetic set.
pub const DEFAULT_TRAIN: usize = 10_000;
/// Test images of the default synthetic set.
pub const DEFAULT_TEST: usize = 2_000;

const SIDE: usize = 32;
const TAU: f32 = std::f32::consts::TAU;

#[derive(Clone, Copy, Debug)]
enum Shape {
    Disc,
    Ring,
    Square,
    Triangle,
    Cross,
    Blobs,
}

#[derive(Clone, Copy, Debug)]
enum Texture {
    Solid,
    Stripes(f32),
    Checker(f32),
    Dots(f32),
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Detail {
    None,
    Dot,
    Notch,
    Marker,
}

/// One class: a shape family with its texture, local detail and mean hue.
#[derive(Clone, Copy, Debug)]
struct Style {
    shape: Shape,
    texture: Texture,
    detail: Detail,
    hue: f32,
}

const fn style(shape: Shape, texture: Texture, detail: Detail, hue: f32) -> Style {
    Style { shape, texture, detail, hue }
}

/// The ten classes of [`synthetic_cifar`]: five pairs.
const TEN: [Style; 10] = [
    style(Shape::Disc, Texture::Stripes(2.2), Detail::None, 0.0),
    style(Shape::Disc, Texture::Stripes(2.2), Detail::Dot, 0.0),
    style(Shape::Ring, Texture::Solid, Detail::None, 0.33),
    style(Shape::Ring, Texture::Solid, Detail::Notch, 0.33),
    style(Shape::Square, Texture::Checker(2.5), Detail::None, 0.6),
    style(Shape::Square, Texture::Checker(2.5), Detail::Marker, 0.6),
    style(Shape::Triangle, Texture::Solid, Detail::None, 0.13),
    style(Shape::Triangle, Texture::Stripes(3.5), Detail::None, 0.13),
    style(Shape::Cross, Texture::Solid, Detail::None, 0.8),
    style(Shape::Cross, Texture::Solid, Detail::Notch, 0.8),
];

const SHAPES: [Shape; 6] = [Shape::Disc, Shape::Ring, Shape::Square, Shape::Triangle, Shape::Cross, Shape::Blobs];
const TEXTURES: [Texture; 5] =
    [Texture::Solid, Texture::Stripes(2.2), Texture::Stripes(3.5), Texture::Checker(2.5), Texture::Dots(2.0)];
const DETAILS: [Detail; 4] = [Detail::None, Detail::Dot, Detail::Notch, Detail::Marker];
const HUES: usize = 8;
/// Probability that an object ignores its class hue and takes a uniformly random one.
const RANDOM_HUE: f32 = 0.3;
/// Standard deviation of an object's hue around its class hue.
const HUE_JITTER: f32 = 0.06;
/// Probability of a small object of a random class in a corner.
const DISTRACTOR: f32 = 0.35;
/// Probability of a clutter disc in front of everything.
const FRONT_CLUTTER: f32 = 0.5;
/// Standard deviation of the pixel noise (fraction of full scale).
const NOISE: f32 = 14.0 / 255.0;
/// Seed of the fixed order in which [`synthetic_many`] takes the styles.
const STYLE_ORDER_SEED: u64 = 0x5EED_C1A5;

/// Number of distinct classes [`synthetic_many`] can make.
pub const MAX_CLASSES: usize = SHAPES.len() * TEXTURES.len() * DETAILS.len() * HUES;

/// The 10-class synthetic CIFAR stand-in: `(train, test)` with `train_n` and `test_n` images,
/// classes balanced (±1) and in random order. Train and test are independent draws.
///
/// ```
/// use nsl_models::data::synthetic::synthetic_cifar;
///
/// let (train, test) = synthetic_cifar(200, 50, 7);
/// assert_eq!((train.len(), test.len(), train.classes), (200, 50, 10));
/// assert_eq!(train.shape, [32, 32, 3]);
/// assert_eq!(train.image(0).len(), 32 * 32 * 3);
/// assert_eq!(synthetic_cifar(200, 50, 7).0, train); // a seed fixes every byte
/// ```
pub fn synthetic_cifar(train_n: usize, test_n: usize, seed: u64) -> (Dataset, Dataset) {
    let split = |name: &str, n: usize, stream: u64| {
        let mut rng = Rng::new(seed).fork(stream);
        let mut labels: Vec<u16> = (0..n).map(|i| (i % TEN.len()) as u16).collect();
        rng.shuffle(&mut labels);
        let images = draw(&TEN, &labels, &rng);
        Dataset::new(format!("synthetic-10/{name}"), images, labels, TEN.len(), [SIDE, SIDE, 3])
    };
    (split("train", train_n, 0), split("test", test_n, 1))
}

/// A many-class synthetic set for few-shot episodes: `classes · per_class` images in class-major
/// order (image `j` has label `j / per_class`).
///
/// # Panics
/// If `classes > MAX_CLASSES` (960).
pub fn synthetic_many(classes: usize, per_class: usize, seed: u64) -> Dataset {
    assert!(classes <= MAX_CLASSES, "synthetic_many makes at most {MAX_CLASSES} classes, not {classes}");
    let mut order: Vec<usize> = (0..MAX_CLASSES).collect();
    Rng::new(STYLE_ORDER_SEED).shuffle(&mut order);
    let styles: Vec<Style> = order[..classes]
        .iter()
        .map(|&i| {
            let (hue, i) = (i % HUES, i / HUES);
            let (detail, i) = (DETAILS[i % DETAILS.len()], i / DETAILS.len());
            let (texture, shape) = (TEXTURES[i % TEXTURES.len()], SHAPES[i / TEXTURES.len()]);
            style(shape, texture, detail, hue as f32 / HUES as f32)
        })
        .collect();
    let labels: Vec<u16> = (0..classes * per_class).map(|j| (j / per_class.max(1)) as u16).collect();
    let images = draw(&styles, &labels, &Rng::new(seed).fork(2));
    Dataset::new(format!("synthetic-{classes}"), images, labels, classes, [SIDE, SIDE, 3])
}

/// Draw one image per label; image `j` uses the stream `base.fork(j)`.
fn draw(styles: &[Style], labels: &[u16], base: &Rng) -> Vec<u8> {
    let mut images = vec![0u8; labels.len() * SIDE * SIDE * 3];
    for (j, (out, &label)) in images.chunks_exact_mut(SIDE * SIDE * 3).zip(labels).enumerate() {
        render(&styles[usize::from(label)], styles, &mut base.clone().fork(j as u64), out);
    }
    images
}

type Rgb = [f32; 3];

/// HSV in `[0,1]` (hue wraps) to RGB.
fn hsv(h: f32, s: f32, v: f32) -> Rgb {
    let h = h.rem_euclid(1.0) * 6.0;
    let f = |n: f32| {
        let k = (n + h) % 6.0;
        v - v * s * (k.min(4.0 - k)).clamp(0.0, 1.0)
    };
    [f(5.0), f(3.0), f(1.0)]
}

fn mix(a: Rgb, b: Rgb, t: f32) -> Rgb {
    [a[0] + (b[0] - a[0]) * t, a[1] + (b[1] - a[1]) * t, a[2] + (b[2] - a[2]) * t]
}

/// Coverage of a pixel by a region with signed distance `d` (in units of `1/scale` pixels).
fn cover(d: f32, scale: f32) -> f32 {
    (0.5 - d * scale).clamp(0.0, 1.0)
}

/// A small clutter item: a disc (`half_len = 0`) or a bar, in pixel coordinates.
struct Item {
    x: f32,
    y: f32,
    dir: (f32, f32),
    half_len: f32,
    radius: f32,
    color: Rgb,
}

impl Item {
    fn random(rng: &mut Rng, front: bool) -> Item {
        let (x, y) = (rng.uniform() * SIDE as f32, rng.uniform() * SIDE as f32);
        let angle = rng.uniform() * TAU;
        let bar = !front && rng.uniform() < 0.5;
        let (half_len, radius) = match (front, bar) {
            (true, _) => (0.0, 1.0 + 1.5 * rng.uniform()),
            (false, true) => (3.0 + 4.0 * rng.uniform(), 0.5 + 0.5 * rng.uniform()),
            (false, false) => (0.0, 1.5 + 2.0 * rng.uniform()),
        };
        let color = hsv(rng.uniform(), rng.uniform(), 0.2 + 0.8 * rng.uniform());
        Item { x, y, dir: (angle.cos(), angle.sin()), half_len, radius, color }
    }
    /// Paint over `c` at pixel centre `(px, py)`.
    fn paint(&self, c: Rgb, px: f32, py: f32) -> Rgb {
        let (dx, dy) = (px - self.x, py - self.y);
        let along = (dx * self.dir.0 + dy * self.dir.1).clamp(-self.half_len, self.half_len);
        let (ex, ey) = (dx - along * self.dir.0, dy - along * self.dir.1);
        mix(c, self.color, cover((ex * ex + ey * ey).sqrt() - self.radius, 1.0))
    }
}

/// Signed distance to the shape in object units.
fn shape_distance(shape: Shape, a: f32, b: f32) -> f32 {
    let r = (a * a + b * b).sqrt();
    match shape {
        Shape::Disc => r - 0.95,
        Shape::Ring => (r - 0.7).abs() - 0.22,
        Shape::Square => a.abs().max(b.abs()) - 0.8,
        Shape::Triangle => {
            // Equilateral triangle of side 2·0.95 centred on its centroid (Quílez's formula).
            let (k, h) = (3f32.sqrt(), 0.95);
            let (mut x, mut y) = (a.abs() - h, b + h / k);
            if x + k * y > 0.0 {
                (x, y) = ((x - k * y) / 2.0, (-k * x - y) / 2.0);
            }
            x -= x.clamp(-2.0 * h, 0.0);
            -(x * x + y * y).sqrt() * y.signum()
        }
        Shape::Cross => {
            let bar = |p: f32, q: f32| (p.abs() - 0.95).max(q.abs() - 0.27);
            bar(a, b).min(bar(b, a))
        }
        Shape::Blobs => (0..3)
            .map(|i| {
                let t = TAU / 4.0 + i as f32 * TAU / 3.0;
                let (da, db) = (a - 0.58 * t.cos(), b - 0.58 * t.sin());
                (da * da + db * db).sqrt() - 0.36
            })
            .fold(f32::INFINITY, f32::min),
    }
}

/// Texture weight in `[0, 1]`: 1 is the object colour, 0 its dark tone.
fn texture(texture: Texture, a: f32, b: f32, phase: (f32, f32)) -> f32 {
    let soft = |t: f32, gain: f32| (0.5 + 0.5 * (gain * t)).clamp(0.0, 1.0);
    let pi = std::f32::consts::PI;
    match texture {
        Texture::Solid => 1.0,
        Texture::Stripes(k) => soft((k * pi * a + phase.0).sin(), 2.5),
        Texture::Checker(k) => soft((k * pi * a + phase.0).sin() * (k * pi * b + phase.1).sin(), 3.0),
        Texture::Dots(k) => {
            1.0 - ((k * pi * a + phase.0).cos() * (k * pi * b + phase.1).cos() - 0.45).clamp(0.0, 0.15) / 0.15
        }
    }
}

/// One drawn instance of a style: pose and colours.
struct Object {
    style: Style,
    centre: (f32, f32),
    scale: f32,
    sin_cos: (f32, f32),
    fg: Rgb,
    dark: Rgb,
    detail: Rgb,
    phase: (f32, f32),
}

impl Object {
    /// Pose and colours of an object of `style` centred within `jitter` px of `centre`, of radius
    /// `scale.0 + scale.1·u` px.
    fn random(style: Style, rng: &mut Rng, centre: (f32, f32), jitter: f32, scale: (f32, f32)) -> Object {
        let centre = (centre.0 + jitter * (2.0 * rng.uniform() - 1.0), centre.1 + jitter * (2.0 * rng.uniform() - 1.0));
        let scale = scale.0 + scale.1 * rng.uniform();
        let sin_cos = (TAU * rng.uniform()).sin_cos();
        let hue = if rng.uniform() < RANDOM_HUE { rng.uniform() } else { style.hue + HUE_JITTER * rng.normal() };
        let fg = hsv(hue, 0.4 + 0.5 * rng.uniform(), 0.5 + 0.5 * rng.uniform());
        let detail = fg.map(|v| 0.35 * v + 0.65 * (1.0 - v));
        let phase = (TAU * rng.uniform(), TAU * rng.uniform());
        Object { style, centre, scale, sin_cos, fg, dark: fg.map(|v| 0.45 * v), detail, phase }
    }
    /// Paint over `c` at pixel centre `(px, py)`.
    fn paint(&self, mut c: Rgb, px: f32, py: f32) -> Rgb {
        let (ox, oy) = (px - self.centre.0, py - self.centre.1);
        let reach = 1.3 * self.scale + 1.0;
        if ox * ox + oy * oy >= reach * reach {
            return c;
        }
        let (sin, cos) = self.sin_cos;
        let (a, b) = ((cos * ox + sin * oy) / self.scale, (cos * oy - sin * ox) / self.scale);
        let mut d = shape_distance(self.style.shape, a, b);
        if self.style.detail == Detail::Notch {
            d = d.max(-(0.3 - a).max(b.abs() - 0.3));
        }
        let body = mix(self.dark, self.fg, texture(self.style.texture, a, b, self.phase));
        c = mix(c, body, cover(d, self.scale));
        let mark = match self.style.detail {
            Detail::Dot => (a * a + b * b).sqrt() - 0.22,
            Detail::Marker => (a - 0.42).abs().max((b - 0.42).abs()) - 0.2,
            Detail::None | Detail::Notch => return c,
        };
        mix(c, self.detail, cover(mark, self.scale))
    }
}

/// A standard-normal-like draw from one `u64`: the sum of four 16-bit uniforms, centred and
/// scaled to unit variance (Irwin–Hall, 4 terms).
fn fast_normal(rng: &mut Rng) -> f32 {
    let r = rng.next_u64();
    let sum: u64 = (0..4).map(|i| (r >> (16 * i)) & 0xFFFF).sum();
    (sum as f32 / 65536.0 - 2.0) * 3f32.sqrt()
}

/// Draw one 32×32×3 image of `style` into `out`; `distractors` are the styles a small second
/// object may take.
fn render(style: &Style, distractors: &[Style], rng: &mut Rng, out: &mut [u8]) {
    let bg = hsv(rng.uniform(), 0.35 * rng.uniform(), 0.25 + 0.5 * rng.uniform());
    let (ramp, (ramp_sin, ramp_cos)) = (0.3 * rng.uniform(), (TAU * rng.uniform()).sin_cos());
    let behind: Vec<Item> = (0..2 + rng.below(3)).map(|_| Item::random(rng, false)).collect();
    let distractor = (rng.uniform() < DISTRACTOR).then(|| {
        let (corner_x, corner_y) = (rng.below(2) as f32, rng.below(2) as f32);
        let other = distractors[rng.below(distractors.len())];
        Object::random(other, rng, (5.0 + 22.0 * corner_x, 5.0 + 22.0 * corner_y), 2.0, (3.5, 1.5))
    });
    let object = Object::random(*style, rng, (16.0, 16.0), 6.0, (6.5, 4.5));
    let front = (rng.uniform() < FRONT_CLUTTER).then(|| {
        let mut item = Item::random(rng, true);
        // Half of them land on the object, where they can hide or mimic a detail.
        if rng.uniform() < 0.5 {
            let (r, t) = (object.scale * rng.uniform(), TAU * rng.uniform());
            (item.x, item.y) = (object.centre.0 + r * t.cos(), object.centre.1 + r * t.sin());
        }
        item
    });

    for y in 0..SIDE {
        for x in 0..SIDE {
            let (px, py) = (x as f32 + 0.5, y as f32 + 0.5);
            let shade = 1.0 + ramp * ((px - 16.0) * ramp_cos + (py - 16.0) * ramp_sin) / 16.0;
            let mut c = bg.map(|v| v * shade);
            for item in &behind {
                c = item.paint(c, px, py);
            }
            if let Some(d) = &distractor {
                c = d.paint(c, px, py);
            }
            c = object.paint(c, px, py);
            if let Some(item) = &front {
                c = item.paint(c, px, py);
            }
            let o = (y * SIDE + x) * 3;
            for k in 0..3 {
                out[o + k] = ((c[k] + NOISE * fast_normal(rng)) * 255.0).round().clamp(0.0, 255.0) as u8;
            }
        }
    }
}
