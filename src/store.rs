//! The experiment store's naming: a stable hash of a configuration, computed (as open_lth does)
//! over the fields that differ from the defaults, so adding a new field with a default value
//! does not rename existing experiments.

use serde::Serialize;
use serde_json::Value;

fn diff(value: &Value, default: &Value) -> Option<Value> {
    match (value, default) {
        (Value::Object(v), Value::Object(d)) => {
            let m: serde_json::Map<String, Value> = v
                .iter()
                .filter_map(|(k, x)| match d.get(k) {
                    Some(dx) => diff(x, dx).map(|x| (k.clone(), x)),
                    None => Some((k.clone(), x.clone())),
                })
                .collect();
            (!m.is_empty()).then_some(Value::Object(m))
        }
        _ if value == default => None,
        _ => Some(value.clone()),
    }
}

/// The non-default part of a configuration as canonical JSON (keys sorted).
pub fn non_default_json<T: Serialize + Default>(config: &T) -> String {
    let v = serde_json::to_value(config).unwrap_or(Value::Null);
    let d = serde_json::to_value(T::default()).unwrap_or(Value::Null);
    // serde_json's Map is a BTreeMap (no preserve_order feature), so the text is canonical.
    diff(&v, &d).unwrap_or(Value::Object(Default::default())).to_string()
}

/// A 16-hex-digit name for a configuration, stable across runs, machines and added defaults.
pub fn stable_hash<T: Serialize + Default>(config: &T) -> String {
    crate::fsio::sha256(non_default_json(config).as_bytes())[..16].to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    #[derive(Serialize, Default)]
    struct C {
        a: u32,
        b: String,
    }
    #[test]
    fn hash_ignores_defaults_and_is_stable() {
        assert_eq!(non_default_json(&C::default()), "{}");
        assert_eq!(non_default_json(&C { a: 3, ..Default::default() }), "{\"a\":3}");
        assert_eq!(stable_hash(&C { a: 3, ..Default::default() }), stable_hash(&C { a: 3, b: String::new() }));
        assert_ne!(stable_hash(&C { a: 3, ..Default::default() }), stable_hash(&C::default()));
    }
}
