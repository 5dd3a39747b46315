/// He-normal init as in the reference code: plain normal with
/// `std = sqrt(2 / fan_in) · scale` (`fan_in = k·k·C_in`).
pub fn he_normal(rng: &mut crate::Rng, n: usize, fan_in: usize, scale: f32) -> Vec<f32> {
    rng.normal_vec(n, (2.0 / fan_in as f32).sqrt() * scale)
}
