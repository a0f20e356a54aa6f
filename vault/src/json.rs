//! One rule for the JSON plcvault stores (log entry bodies, manifests): no object repeats
//! a key. serde ignores a repeated unknown key and takes the last of a repeated map key, so
//! two readers could see two different values in the same signed bytes; here a repeated key
//! is malformed, whatever its level.

use std::cell::Cell;
use std::collections::HashSet;
use std::fmt;

use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};

/// Walks any JSON value, failing on a repeated key or on more than `left` values.
#[derive(Clone, Copy)]
struct Walk<'a> {
    left: &'a Cell<usize>,
}

impl Walk<'_> {
    fn count<E: de::Error>(&self) -> Result<(), E> {
        match self.left.get() {
            0 => Err(E::custom("more values than an entry may hold")),
            n => {
                self.left.set(n - 1);
                Ok(())
            }
        }
    }
}

impl<'de> de::DeserializeSeed<'de> for Walk<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Walk<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("JSON")
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        self.count()
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        self.count()
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        self.count()
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        self.count()
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<(), E> {
        self.count()
    }
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        self.count()
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        self.count()?;
        while seq.next_element_seed(self)?.is_some() {}
        Ok(())
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        self.count()?;
        let mut keys = HashSet::new();
        while let Some(k) = map.next_key::<String>()? {
            if !keys.insert(k.clone()) {
                let shown: String = k.chars().take(64).collect();
                return Err(de::Error::custom(format!(
                    "the key `{shown}` appears twice"
                )));
            }
            map.next_value_seed(self)?;
        }
        Ok(())
    }
}

/// Checks that `bytes` are JSON in which no object repeats a key and, with `max_values`,
/// that they hold at most that many values.
///
/// Fails saying which rule is broken.
pub fn check(bytes: &[u8], max_values: Option<usize>) -> Result<(), String> {
    let left = Cell::new(max_values.unwrap_or(usize::MAX));
    let mut d = serde_json::Deserializer::from_slice(bytes);
    de::DeserializeSeed::deserialize(Walk { left: &left }, &mut d)
        .and_then(|()| d.end())
        .map_err(|e| e.to_string())
}

/// Checks that `bytes` are JSON in which no object repeats a key.
///
/// Fails saying which key, or why the bytes are not JSON.
pub fn check_no_repeated_keys(bytes: &[u8]) -> Result<(), String> {
    check(bytes, None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_keys_are_found_at_any_depth() {
        assert!(check_no_repeated_keys(br#"{"a":1,"b":[{"c":2,"d":3}]}"#).is_ok());
        for bad in [
            &br#"{"a":1,"a":2}"#[..],
            br#"{"x":[{"c":1,"c":1}]}"#,
            br#"{"x":{"y":{"z":1,"z":2}}}"#,
        ] {
            let e = check_no_repeated_keys(bad).unwrap_err();
            assert!(e.contains("appears twice"), "{e}");
        }
    }

    #[test]
    fn the_number_of_values_is_bounded() {
        assert!(check(b"[1,2,3]", Some(4)).is_ok());
        assert!(check(b"[1,2,3]", Some(3)).is_err());
        assert!(check(br#"{"a":[0,0,0,0]}"#, Some(5)).is_err());
    }
}
