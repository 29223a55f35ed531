//! The `random` provider: values generated once, at create, and then kept
//! in the state — stable across applies until an argument or one of its
//! `keepers` changes (every argument forces a new value).
//!
//! - `random_id`: `byte_length` random bytes as `hex`, `b64_url`, `b64_std`
//!   and `dec`; `id` is the `b64_url` form.
//! - `random_password`: `length` characters from the enabled classes
//!   (`upper`, `lower`, `numeric`, `special`, all on by default), at least
//!   one of each enabled class; `result` is sensitive.
//! - `random_integer`: `result` uniformly in `min..=max`.
//!
//! Randomness comes from the operating system (`getrandom`).

use std::collections::BTreeMap;

use infra_provider_sdk::*;
use serde_json::{Value, json};

pub struct RandomProvider;

fn keepers() -> Attribute {
    Attribute::optional(AttributeType::Map(Box::new(AttributeType::String)))
        .force_new()
        .describe("arbitrary values; changing any of them generates a new value")
}

fn random_bytes(count: usize) -> Result<Vec<u8>, ProviderError> {
    let mut bytes = vec![0u8; count];
    getrandom::fill(&mut bytes).map_err(|error| {
        ProviderError::new(format!("cannot read randomness from the OS: {error}"))
    })?;
    Ok(bytes)
}

/// A uniform random number below `bound` (rejection sampling, no bias).
fn below(bound: u64) -> Result<u64, ProviderError> {
    if bound <= 1 {
        return Ok(0);
    }
    let zone = u64::MAX - u64::MAX % bound;
    loop {
        let bytes = random_bytes(8)?;
        let value = u64::from_le_bytes(bytes.try_into().expect("8 bytes"));
        if value < zone {
            return Ok(value % bound);
        }
    }
}

fn base64(bytes: &[u8], alphabet: &[u8; 64], pad: bool) -> String {
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |acc, (i, b)| acc | (u32::from(*b) << (16 - 8 * i)));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(alphabet[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else if pad {
                out.push('=');
            }
        }
    }
    out
}

const STANDARD: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
const URL_SAFE: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

fn number(config: &Attributes, name: &str) -> Option<i64> {
    config
        .get(name)
        .and_then(Value::as_f64)
        .filter(|n| n.fract() == 0.0)
        .map(|n| n as i64)
}

fn flag(config: &Attributes, name: &str) -> bool {
    config.get(name).and_then(Value::as_bool).unwrap_or(true)
}

fn generate(type_name: &str, config: &Attributes) -> Result<Attributes, ProviderError> {
    let mut state = config.clone();
    match type_name {
        "random_id" => {
            let length = number(config, "byte_length").unwrap_or(0).clamp(1, 1024) as usize;
            let bytes = random_bytes(length)?;
            let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
            let url = base64(&bytes, URL_SAFE, false);
            // Decimal of the bytes as one big-endian number (arbitrary size).
            let mut digits = vec![0u32];
            for byte in &bytes {
                let mut carry = u32::from(*byte);
                for digit in &mut digits {
                    let value = *digit * 256 + carry;
                    *digit = value % 10;
                    carry = value / 10;
                }
                while carry > 0 {
                    digits.push(carry % 10);
                    carry /= 10;
                }
            }
            let dec: String = digits
                .iter()
                .rev()
                .map(|d| char::from(b'0' + *d as u8))
                .collect();
            state.insert("hex".into(), json!(hex));
            state.insert("b64_std".into(), json!(base64(&bytes, STANDARD, true)));
            state.insert("b64_url".into(), json!(url));
            state.insert("dec".into(), json!(dec));
            state.insert("id".into(), json!(url));
        }
        "random_password" => {
            let length = number(config, "length").unwrap_or(16).clamp(1, 4096) as usize;
            let classes: Vec<&[u8]> = [
                ("upper", &b"ABCDEFGHIJKLMNOPQRSTUVWXYZ"[..]),
                ("lower", &b"abcdefghijklmnopqrstuvwxyz"[..]),
                ("numeric", &b"0123456789"[..]),
                ("special", &b"!#$%&*()-_=+[]{}<>:?"[..]),
            ]
            .into_iter()
            .filter(|(name, _)| flag(config, name))
            .map(|(_, chars)| chars)
            .collect();
            if classes.is_empty() {
                return Err(ProviderError::new(
                    "a password needs at least one character class",
                ));
            }
            let all: Vec<u8> = classes.concat();
            let mut password: Vec<u8> = Vec::with_capacity(length);
            // One of each enabled class first (if there is room), then any.
            for class in classes.iter().take(length) {
                password.push(class[below(class.len() as u64)? as usize]);
            }
            while password.len() < length {
                password.push(all[below(all.len() as u64)? as usize]);
            }
            // Shuffle so the guaranteed characters are not at the front.
            for i in (1..password.len()).rev() {
                let j = below(i as u64 + 1)? as usize;
                password.swap(i, j);
            }
            state.insert(
                "result".into(),
                json!(String::from_utf8(password).expect("ASCII")),
            );
            state.insert("id".into(), json!("none"));
        }
        "random_integer" => {
            let (Some(min), Some(max)) = (number(config, "min"), number(config, "max")) else {
                return Err(ProviderError::new("`min` and `max` must be whole numbers"));
            };
            let span = (max - min) as u64 + 1;
            let result = min + below(span)? as i64;
            state.insert("result".into(), json!(result));
            state.insert("id".into(), json!(result.to_string()));
        }
        other => {
            return Err(ProviderError::new(format!(
                "`random` has no resource type `{other}`"
            )));
        }
    }
    Ok(state)
}

impl Provider for RandomProvider {
    fn name(&self) -> &'static str {
        "random"
    }

    fn schema(&self) -> Schema {
        let string = || Attribute::computed(AttributeType::String);
        let class = |name: &str| {
            Attribute::optional(AttributeType::Bool)
                .force_new()
                .describe(&format!("include {name} characters (default true)"))
        };
        Schema {
            resources: [
                (
                    "random_id".to_string(),
                    ResourceSchema::new(
                        "",
                        vec![
                            (
                                "byte_length",
                                Attribute::required(AttributeType::Number).force_new(),
                            ),
                            ("keepers", keepers()),
                            ("hex", string()),
                            ("b64_std", string()),
                            ("b64_url", string()),
                            ("dec", string()),
                            ("id", string()),
                        ],
                    ),
                ),
                (
                    "random_password".to_string(),
                    ResourceSchema::new(
                        "",
                        vec![
                            (
                                "length",
                                Attribute::required(AttributeType::Number).force_new(),
                            ),
                            ("upper", class("upper-case")),
                            ("lower", class("lower-case")),
                            ("numeric", class("digit")),
                            ("special", class("special")),
                            ("keepers", keepers()),
                            (
                                "result",
                                Attribute::computed(AttributeType::String).sensitive(),
                            ),
                            ("id", string()),
                        ],
                    ),
                ),
                (
                    "random_integer".to_string(),
                    ResourceSchema::new(
                        "",
                        vec![
                            (
                                "min",
                                Attribute::required(AttributeType::Number).force_new(),
                            ),
                            (
                                "max",
                                Attribute::required(AttributeType::Number).force_new(),
                            ),
                            ("keepers", keepers()),
                            ("result", Attribute::computed(AttributeType::Number)),
                            ("id", string()),
                        ],
                    ),
                ),
            ]
            .into(),
            data_sources: BTreeMap::new(),
        }
    }

    fn validate(&self, type_name: &str, config: &Attributes) -> Vec<Diagnostic> {
        let mut problems = Vec::new();
        match type_name {
            "random_id" => {
                if let Some(length) = number(config, "byte_length")
                    && !(1..=1024).contains(&length)
                {
                    problems.push(
                        Diagnostic::error("`byte_length` must be between 1 and 1024")
                            .at("byte_length"),
                    );
                }
            }
            "random_password" => {
                if let Some(length) = number(config, "length")
                    && !(1..=4096).contains(&length)
                {
                    problems.push(
                        Diagnostic::error("`length` must be between 1 and 4096").at("length"),
                    );
                }
                if ["upper", "lower", "numeric", "special"]
                    .iter()
                    .all(|class| !flag(config, class))
                {
                    problems.push(
                        Diagnostic::error("every character class is disabled")
                            .help("enable at least one of `upper`, `lower`, `numeric`, `special`"),
                    );
                }
            }
            "random_integer" => {
                if let (Some(min), Some(max)) = (number(config, "min"), number(config, "max"))
                    && min > max
                {
                    problems.push(
                        Diagnostic::error(format!("`min` ({min}) is greater than `max` ({max})"))
                            .at("min"),
                    );
                }
            }
            _ => {}
        }
        problems
    }

    fn create(
        &self,
        request: CreateRequest,
    ) -> BoxFuture<'_, Result<ObjectResponse, ProviderError>> {
        Box::pin(async move {
            Ok(ObjectResponse::from(generate(
                &request.type_name,
                &request.config,
            )?))
        })
    }

    /// Nothing exists outside the state: what was generated stays.
    fn read(&self, request: ReadRequest) -> BoxFuture<'_, Result<ReadResponse, ProviderError>> {
        Box::pin(async move { Ok(ReadResponse::from(Some(request.state))) })
    }

    /// Every argument forces a new value, so an update can only be about
    /// nothing; the generated values stay.
    fn update(
        &self,
        request: UpdateRequest,
    ) -> BoxFuture<'_, Result<ObjectResponse, ProviderError>> {
        Box::pin(async move {
            let mut state = request.prior;
            state.extend(request.config);
            Ok(ObjectResponse::from(state))
        })
    }

    fn delete(&self, _request: DeleteRequest) -> BoxFuture<'_, Result<(), ProviderError>> {
        Box::pin(async { Ok(()) })
    }

    /// A value generated by a create nobody recorded exists nowhere else:
    /// the next create generates another, and nothing is left behind.
    fn adopt(&self, _request: AdoptRequest) -> BoxFuture<'_, Result<Adoption, ProviderError>> {
        Box::pin(async { Ok(Adoption::Absent) })
    }
}
