//! Random identifiers in the shapes AWS gives them: request ids (UUID v4 form), and the alphanumeric
//! strings access keys, secrets, session tokens and consumption tokens are made of.

use rand::distributions::Alphanumeric;
use rand::Rng;

pub fn random_string(len: usize) -> String {
    rand::thread_rng().sample_iter(&Alphanumeric).take(len).map(char::from).collect()
}

pub fn random_upper(len: usize) -> String {
    random_string(len * 2).to_ascii_uppercase().chars().take(len).collect()
}

pub fn request_id() -> String {
    let b: [u8; 16] = rand::thread_rng().gen();
    let h = hex::encode(b);
    format!("{}-{}-4{}-a{}-{}", &h[0..8], &h[8..12], &h[13..16], &h[17..20], &h[20..32])
}
