//! API keys: made here, shown once, stored only as SHA-256.

use rand::distr::{Alphanumeric, SampleString};
use sha2::{Digest, Sha256};

const KEY_PREFIX: &str = "gwd_";
const KEY_RANDOM_CHARS: usize = 40;

/// A new random key (about 238 bits of entropy).
pub fn generate_api_key() -> String {
    let random = Alphanumeric.sample_string(&mut rand::rng(), KEY_RANDOM_CHARS);
    format!("{KEY_PREFIX}{random}")
}

/// SHA-256 of a key: the only form in which keys are stored or compared.
pub fn api_key_hash(key: &str) -> Vec<u8> {
    Sha256::digest(key.as_bytes()).to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_unique_prefixed_and_hash_to_32_bytes() {
        let (a, b) = (generate_api_key(), generate_api_key());
        assert_ne!(a, b);
        assert!(a.starts_with("gwd_") && a.len() == 44);
        assert_eq!(api_key_hash(&a).len(), 32);
    }
}
