//! JSON read strictly: a key that appears twice in one object is an error
//! that names it and where it is. `serde_json` keeps the last of two
//! equal keys in silence, so a sloppy merge that leaves a second
//! `"resources": {}` would drop every object of the state and the next
//! apply would create them all again.

use std::fmt;

use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

/// Parses `text`, refusing duplicate keys.
pub fn parse(text: &str) -> Result<Value, serde_json::Error> {
    let mut deserializer = serde_json::Deserializer::from_str(text);
    let value = Strict { at: None }.deserialize(&mut deserializer)?;
    deserializer.end()?;
    Ok(value)
}

/// Where a value is: the keys and indexes from the top, built into text
/// only for an error.
enum Step<'a> {
    Key(&'a str),
    Index(usize),
}

struct At<'a> {
    step: Step<'a>,
    parent: Option<&'a At<'a>>,
}

impl fmt::Display for At<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(parent) = self.parent {
            write!(f, "{parent}")?;
        }
        match self.step {
            Step::Key(key) if self.parent.is_some() => write!(f, ".{key}"),
            Step::Key(key) => write!(f, "{key}"),
            Step::Index(index) => write!(f, "[{index}]"),
        }
    }
}

struct Strict<'a> {
    at: Option<&'a At<'a>>,
}

impl<'de> DeserializeSeed<'de> for Strict<'_> {
    type Value = Value;

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Strict<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, value: bool) -> Result<Value, E> {
        Ok(Value::Bool(value))
    }

    fn visit_i64<E>(self, value: i64) -> Result<Value, E> {
        Ok(Value::from(value))
    }

    fn visit_u64<E>(self, value: u64) -> Result<Value, E> {
        Ok(Value::from(value))
    }

    fn visit_f64<E>(self, value: f64) -> Result<Value, E> {
        Ok(Value::from(value))
    }

    fn visit_str<E>(self, value: &str) -> Result<Value, E> {
        Ok(Value::String(value.to_string()))
    }

    fn visit_string<E>(self, value: String) -> Result<Value, E> {
        Ok(Value::String(value))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut values = Vec::new();
        loop {
            let at = At {
                step: Step::Index(values.len()),
                parent: self.at,
            };
            match seq.next_element_seed(Strict { at: Some(&at) })? {
                Some(value) => values.push(value),
                None => return Ok(Value::Array(values)),
            }
        }
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut object = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            let at = At {
                step: Step::Key(&key),
                parent: self.at,
            };
            if object.contains_key(&key) {
                return Err(de::Error::custom(format!(
                    "the key `{at}` appears twice (a merge left both?)"
                )));
            }
            let value = map.next_value_seed(Strict { at: Some(&at) })?;
            object.insert(key, value);
        }
        Ok(Value::Object(object))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_duplicate_key_is_named_with_where_it_is() {
        let error = parse(r#"{ "resources": {}, "lineage": "x", "resources": {} }"#).unwrap_err();
        assert!(
            error
                .to_string()
                .contains("the key `resources` appears twice"),
            "{error}"
        );
        let nested = r#"{ "resources": { "a.b": { "attributes": { "id": 1, "id": 2 } } } }"#;
        let error = parse(nested).unwrap_err();
        assert!(
            error
                .to_string()
                .contains("`resources.a.b.attributes.id` appears twice"),
            "{error}"
        );
        let listed = r#"{ "list": [ {}, { "k": 1, "k": 1 } ] }"#;
        assert!(
            parse(listed)
                .unwrap_err()
                .to_string()
                .contains("`list[1].k`")
        );
    }

    #[test]
    fn it_reads_what_serde_json_reads() {
        let text =
            r#"{ "a": [1, -2, 3.5, "x", true, null, { "b": {} }], "c": 18446744073709551615 }"#;
        assert_eq!(
            parse(text).unwrap(),
            serde_json::from_str::<Value>(text).unwrap()
        );
        assert!(parse("{} trailing").is_err());
    }
}
