//! Access tokens as the service issues them: signed JWTs (HS256) that carry the client id, the
//! expiry and a revocation generation, so checking one needs no lookup table.

use std::sync::atomic::{AtomicU64, Ordering};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

#[derive(Serialize, Deserialize)]
struct Claims {
    client_id: String,
    iat: i64,
    exp: i64,
    /// Expiry in milliseconds: `exp` is whole seconds by convention, tests use 3-second tokens.
    exp_ms: i64,
    /// Tokens of an older generation were revoked.
    gen: u64,
    jti: u64,
}

/// Why a token was refused.
#[derive(Debug, PartialEq, Eq)]
pub enum TokenProblem {
    Malformed,
    Expired,
    Revoked,
}

pub struct TokenIssuer {
    key: [u8; 32],
    generation: AtomicU64,
    next_id: AtomicU64,
}

impl TokenIssuer {
    /// `nonce` makes tokens of one sandbox process useless against another.
    pub fn new(seed: u64, nonce: u64) -> Self {
        let mut key = [0u8; 32];
        for (i, chunk) in key.chunks_mut(8).enumerate() {
            chunk.copy_from_slice(&crate::util::mix_all(&[seed, nonce, i as u64]).to_le_bytes());
        }
        TokenIssuer { key, generation: AtomicU64::new(0), next_id: AtomicU64::new(1) }
    }

    pub fn issue(&self, client_id: &str, now_ms: i64, lifetime_ms: i64) -> String {
        let claims = Claims {
            client_id: client_id.to_string(),
            iat: now_ms / 1000,
            exp: (now_ms + lifetime_ms) / 1000,
            exp_ms: now_ms + lifetime_ms,
            gen: self.generation.load(Ordering::SeqCst),
            jti: self.next_id.fetch_add(1, Ordering::Relaxed),
        };
        let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
        let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims).expect("claims serialise"));
        let signing_input = format!("{header}.{payload}");
        let signature = URL_SAFE_NO_PAD.encode(self.sign(signing_input.as_bytes()));
        format!("{signing_input}.{signature}")
    }

    /// The client id the token was issued to, if the token is genuine, live and not revoked.
    pub fn verify(&self, token: &str, now_ms: i64) -> Result<String, TokenProblem> {
        let (signing_input, signature) = token.rsplit_once('.').ok_or(TokenProblem::Malformed)?;
        let signature = URL_SAFE_NO_PAD.decode(signature).map_err(|_| TokenProblem::Malformed)?;
        let mut mac = HmacSha256::new_from_slice(&self.key).expect("any key length works");
        mac.update(signing_input.as_bytes());
        mac.verify_slice(&signature).map_err(|_| TokenProblem::Malformed)?;
        let payload = signing_input.split_once('.').ok_or(TokenProblem::Malformed)?.1;
        let payload = URL_SAFE_NO_PAD.decode(payload).map_err(|_| TokenProblem::Malformed)?;
        let claims: Claims = serde_json::from_slice(&payload).map_err(|_| TokenProblem::Malformed)?;
        if claims.gen < self.generation.load(Ordering::SeqCst) {
            return Err(TokenProblem::Revoked);
        }
        if now_ms >= claims.exp_ms {
            return Err(TokenProblem::Expired);
        }
        Ok(claims.client_id)
    }

    /// Revokes every token issued so far.
    pub fn revoke_all(&self) {
        self.generation.fetch_add(1, Ordering::SeqCst);
    }

    fn sign(&self, data: &[u8]) -> Vec<u8> {
        let mut mac = HmacSha256::new_from_slice(&self.key).expect("any key length works");
        mac.update(data);
        mac.finalize().into_bytes().to_vec()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_verify_expire_and_revoke() {
        let issuer = TokenIssuer::new(1, 2);
        let token = issuer.issue("cid.a", 1_000, 3_000);
        assert_eq!(issuer.verify(&token, 3_999), Ok("cid.a".to_string()));
        assert_eq!(issuer.verify(&token, 4_000), Err(TokenProblem::Expired));
        issuer.revoke_all();
        assert_eq!(issuer.verify(&token, 2_000), Err(TokenProblem::Revoked));
        let fresh = issuer.issue("cid.a", 2_000, 3_000);
        assert!(issuer.verify(&fresh, 2_001).is_ok());
    }

    #[test]
    fn forged_or_foreign_tokens_are_malformed() {
        let issuer = TokenIssuer::new(1, 2);
        let other = TokenIssuer::new(1, 3);
        let token = other.issue("cid.a", 0, 10_000);
        assert_eq!(issuer.verify(&token, 1), Err(TokenProblem::Malformed));
        assert_eq!(issuer.verify("not-a-token", 1), Err(TokenProblem::Malformed));
        let mut tampered = issuer.issue("cid.a", 0, 10_000);
        tampered.insert(40, 'x');
        assert_eq!(issuer.verify(&tampered, 1), Err(TokenProblem::Malformed));
    }
}
