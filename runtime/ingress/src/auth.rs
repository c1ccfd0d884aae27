//! Who may do what: bearer tokens with scopes.
//!
//! With no tokens configured the API is open; the CLI allows that only on a loopback
//! address. With tokens, every request but the health probes carries
//! `Authorization: Bearer <token>` (401 otherwise), and the token's scopes decide (403):
//! - `read`: every `GET`, and queries (`/v1/query/…`, also by `POST`);
//! - `publish:<pattern>`: publishing to topics the pattern matches;
//! - `admin`: everything, including changes such as dead-letter replay and discard.
//!
//! Decision: tokens are kept only as SHA-256 digests and a presented token is compared
//! digest to digest with [`subtle`]'s constant-time equality, over every configured
//! token, so neither the time taken nor an early exit tells an attacker how close a
//! guess was, or which token it resembled. Tokens never appear in logs or `Debug`.

use choreo_core::{Pattern, Topic};
use http::{HeaderMap, StatusCode, header};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::problem::Problem;

/// What one token may do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// Read everything: events, handlers, topics, dead-letters, metrics, queries.
    Read,
    /// Publish to topics this pattern matches.
    Publish(Pattern),
    /// Everything.
    Admin,
}

impl std::str::FromStr for Scope {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        match text {
            "read" => Ok(Scope::Read),
            "admin" => Ok(Scope::Admin),
            _ => match text.strip_prefix("publish:") {
                Some(pattern) => Pattern::new(pattern)
                    .map(Scope::Publish)
                    .map_err(|e| format!("scope `{text}`: {e}")),
                None => Err(format!(
                    "unknown scope `{text}`: use `read`, `admin` or `publish:<pattern>`"
                )),
            },
        }
    }
}

/// One configured token: a name for messages, the secret, and its scopes.
#[derive(Clone, PartialEq, Eq)]
pub struct TokenSpec {
    /// Names the token in errors and logs (the secret never appears).
    pub name: String,
    /// The bearer secret.
    pub secret: String,
    /// What it may do.
    pub scopes: Vec<Scope>,
}

impl std::fmt::Debug for TokenSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenSpec")
            .field("name", &self.name)
            .field("secret", &"<redacted>")
            .field("scopes", &self.scopes)
            .finish()
    }
}

/// Shortest secret accepted: a guessable token is no protection.
pub const MIN_SECRET_BYTES: usize = 16;

struct Token {
    name: String,
    digest: [u8; 32],
    scopes: Vec<Scope>,
}

/// The API's access rules.
pub struct Auth {
    tokens: Vec<Token>,
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.tokens.iter().map(|t| t.name.as_str()).collect();
        f.debug_struct("Auth").field("tokens", &names).finish()
    }
}

impl Default for Auth {
    fn default() -> Self {
        Auth::open()
    }
}

/// The caller of one request, once authenticated.
#[derive(Debug, Clone, Copy)]
pub enum Caller<'a> {
    /// No tokens are configured: anyone may do anything.
    Anyone,
    /// A configured token.
    Token {
        /// Its name.
        name: &'a str,
        /// Its scopes.
        scopes: &'a [Scope],
    },
}

/// What a request needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need<'a> {
    /// Nothing (health probes).
    Nothing,
    /// The `read` scope.
    Read,
    /// Permission to publish to this topic.
    Publish(&'a Topic),
    /// Permission to publish somewhere: the topics are checked one by one later.
    PublishSomewhere,
    /// The `admin` scope.
    Admin,
}

impl Auth {
    /// No tokens: every request is allowed.
    pub fn open() -> Self {
        Auth { tokens: Vec::new() }
    }

    /// Rules from configured tokens. Names must be unique and secrets long enough.
    pub fn new(specs: Vec<TokenSpec>) -> Result<Self, String> {
        let mut tokens: Vec<Token> = Vec::with_capacity(specs.len());
        for spec in specs {
            if spec.name.is_empty() {
                return Err("a token has an empty name".into());
            }
            if tokens.iter().any(|t| t.name == spec.name) {
                return Err(format!("two tokens are named `{}`", spec.name));
            }
            if spec.secret.len() < MIN_SECRET_BYTES {
                return Err(format!(
                    "token `{}` is shorter than {MIN_SECRET_BYTES} bytes; use a random secret",
                    spec.name
                ));
            }
            if spec.scopes.is_empty() {
                return Err(format!("token `{}` has no scopes", spec.name));
            }
            tokens.push(Token {
                name: spec.name,
                digest: Sha256::digest(spec.secret.as_bytes()).into(),
                scopes: spec.scopes,
            });
        }
        Ok(Auth { tokens })
    }

    /// Whether no tokens are configured.
    pub fn is_open(&self) -> bool {
        self.tokens.is_empty()
    }

    /// Who sent this request: 401 without a valid bearer token when tokens are configured.
    pub fn authenticate(&self, headers: &HeaderMap) -> Result<Caller<'_>, Problem> {
        if self.is_open() {
            return Ok(Caller::Anyone);
        }
        let presented = headers
            .get(header::AUTHORIZATION)
            .ok_or_else(|| {
                unauthorized("this API needs a token: send `Authorization: Bearer <token>`")
            })?
            .to_str()
            .ok()
            .and_then(|value| {
                let (scheme, token) = value.split_once(' ')?;
                scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
            })
            .ok_or_else(|| unauthorized("the Authorization header is not `Bearer <token>`"))?;
        let digest: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        // Every token is compared, so the time taken does not depend on which matched.
        let mut found: Option<&Token> = None;
        for token in &self.tokens {
            if bool::from(token.digest.ct_eq(&digest)) {
                found = Some(token);
            }
        }
        let token = found.ok_or_else(|| unauthorized("the token is not valid"))?;
        Ok(Caller::Token {
            name: &token.name,
            scopes: &token.scopes,
        })
    }
}

impl Caller<'_> {
    /// 403 unless this caller has what `need` asks for.
    pub fn check(&self, need: Need<'_>) -> Result<(), Problem> {
        let Caller::Token { name, scopes } = *self else {
            return Ok(());
        };
        let admin = scopes.contains(&Scope::Admin);
        let allowed = admin
            || match need {
                Need::Nothing => true,
                Need::Read => scopes.contains(&Scope::Read),
                Need::Publish(topic) => scopes
                    .iter()
                    .any(|s| matches!(s, Scope::Publish(p) if p.matches(topic))),
                Need::PublishSomewhere => scopes.iter().any(|s| matches!(s, Scope::Publish(_))),
                Need::Admin => false,
            };
        if allowed {
            return Ok(());
        }
        let wanted = match need {
            Need::Publish(topic) => format!("publish to `{topic}`"),
            Need::PublishSomewhere => "publish".to_owned(),
            Need::Read => "read (scope `read`)".to_owned(),
            Need::Admin | Need::Nothing => "change things (scope `admin`)".to_owned(),
        };
        Err(Problem::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            format!(
                "token `{name}` may not {wanted}; its scopes are: {}",
                describe(scopes)
            ),
        ))
    }
}

fn describe(scopes: &[Scope]) -> String {
    scopes
        .iter()
        .map(|scope| match scope {
            Scope::Read => "read".to_owned(),
            Scope::Admin => "admin".to_owned(),
            Scope::Publish(pattern) => format!("publish:{pattern}"),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn unauthorized(detail: &str) -> Problem {
    Problem::new(StatusCode::UNAUTHORIZED, "unauthorized", detail)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(name: &str, secret: &str, scopes: &[&str]) -> TokenSpec {
        TokenSpec {
            name: name.into(),
            secret: secret.into(),
            scopes: scopes.iter().map(|s| s.parse().unwrap()).collect(),
        }
    }

    fn bearer(token: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::AUTHORIZATION,
            format!("Bearer {token}").parse().unwrap(),
        );
        headers
    }

    #[test]
    fn scopes_parse_and_bad_ones_are_named() {
        assert_eq!("read".parse::<Scope>(), Ok(Scope::Read));
        assert!(matches!(
            "publish:orders.>".parse::<Scope>(),
            Ok(Scope::Publish(_))
        ));
        let err = "publish:orders..x".parse::<Scope>().unwrap_err();
        assert!(err.contains("publish:orders..x"), "{err}");
        let err = "write".parse::<Scope>().unwrap_err();
        assert!(err.contains("unknown scope `write`"), "{err}");
    }

    #[test]
    fn a_token_may_do_what_its_scopes_say() {
        let auth = Auth::new(vec![
            spec("reader", "reader-secret-0123456", &["read"]),
            spec("orders", "orders-secret-0123456", &["publish:orders.>"]),
            spec("ops", "ops-secret-0123456789", &["admin"]),
        ])
        .unwrap();
        let topic = Topic::new("orders.created").unwrap();
        let other = Topic::new("payments.captured").unwrap();

        let reader = auth.authenticate(&bearer("reader-secret-0123456")).unwrap();
        assert!(reader.check(Need::Read).is_ok());
        assert_eq!(reader.check(Need::Publish(&topic)).unwrap_err().status, 403);
        assert!(reader.check(Need::Admin).is_err());

        let orders = auth.authenticate(&bearer("orders-secret-0123456")).unwrap();
        assert!(orders.check(Need::Publish(&topic)).is_ok());
        assert!(orders.check(Need::PublishSomewhere).is_ok());
        let denied = orders.check(Need::Publish(&other)).unwrap_err();
        assert!(
            denied
                .detail
                .contains("`orders` may not publish to `payments.captured`")
                && denied.detail.contains("publish:orders.>"),
            "{}",
            denied.detail
        );
        assert!(orders.check(Need::Read).is_err());

        let ops = auth.authenticate(&bearer("ops-secret-0123456789")).unwrap();
        for need in [Need::Read, Need::Admin, Need::Publish(&other)] {
            assert!(ops.check(need).is_ok());
        }
    }

    #[test]
    fn missing_malformed_and_unknown_tokens_are_401() {
        let auth = Auth::new(vec![spec("ops", "ops-secret-0123456789", &["admin"])]).unwrap();
        for headers in [HeaderMap::new(), bearer("ops-secret-012345678"), {
            let mut h = HeaderMap::new();
            h.insert(header::AUTHORIZATION, "Basic b3BzOng=".parse().unwrap());
            h
        }] {
            assert_eq!(auth.authenticate(&headers).unwrap_err().status, 401);
        }
    }

    #[test]
    fn weak_or_ambiguous_token_sets_are_refused() {
        let short = Auth::new(vec![spec("a", "short", &["read"])]).unwrap_err();
        assert!(short.contains("shorter than 16"), "{short}");
        let twice = Auth::new(vec![
            spec("a", "0123456789abcdef", &["read"]),
            spec("a", "fedcba9876543210", &["read"]),
        ])
        .unwrap_err();
        assert!(twice.contains("two tokens are named `a`"), "{twice}");
        let none = Auth::new(vec![spec("a", "0123456789abcdef", &[])]).unwrap_err();
        assert!(none.contains("no scopes"), "{none}");
    }

    #[test]
    fn secrets_never_show_in_debug_output() {
        let token = spec("ops", "ops-secret-0123456789", &["admin"]);
        assert!(!format!("{token:?}").contains("ops-secret"));
        let auth = Auth::new(vec![token]).unwrap();
        assert!(!format!("{auth:?}").contains("ops-secret"));
    }
}
