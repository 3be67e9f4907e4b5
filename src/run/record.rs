//! One row of training metrics: an ordered list of `key -> value` pairs
//! starting with `step`, e.g. `Record::new(100).with("loss", 0.5)`.
//!
//! Order is kept (rather than sorting keys) so that JSONL lines and CSV
//! columns read in the order the trainer logged them.
//!
//! JSON cannot hold NaN or infinities, yet a diverging run produces exactly
//! those, and they must not be lost: non-finite floats serialize as the JSON
//! strings `"nan"`, `"inf"` and `"-inf"` (Python's `float("nan")` etc. read
//! them back). A string metric with one of those texts is therefore
//! indistinguishable from the float; metrics are meant to be numbers.

use std::fmt;

use serde::ser::{Serialize, SerializeMap, Serializer};

/// One metric value: an integer, a float or a short string (e.g. a phase
/// name).
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Int(i64),
    Float(f64),
    Str(String),
}

impl Value {
    /// The value as a number, for plotting; `None` for strings.
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Value::Int(i) => Some(*i as f64),
            Value::Float(x) => Some(*x),
            Value::Str(_) => None,
        }
    }
}

/// Shortest text that parses back to the same float (Rust's `{:?}` switches
/// to exponent notation for very small or large magnitudes, unlike `{}`),
/// with non-finite values spelled as in the JSON output.
pub(crate) fn format_float(x: f64) -> String {
    if x.is_nan() {
        "nan".to_string()
    } else if x.is_infinite() {
        if x > 0.0 { "inf" } else { "-inf" }.to_string()
    } else {
        format!("{x:?}")
    }
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Int(i) => write!(f, "{i}"),
            Value::Float(x) => f.write_str(&format_float(*x)),
            Value::Str(s) => f.write_str(s),
        }
    }
}

impl Serialize for Value {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Value::Int(i) => s.serialize_i64(*i),
            Value::Float(x) if x.is_finite() => s.serialize_f64(*x),
            Value::Float(x) => s.serialize_str(&format_float(*x)),
            Value::Str(v) => s.serialize_str(v),
        }
    }
}

impl From<f64> for Value {
    fn from(x: f64) -> Self {
        Value::Float(x)
    }
}

/// Keeps the f32's shortest decimal form (0.1f32 is logged as 0.1, not as
/// its exact binary value 0.10000000149011612), which still reads back as
/// the same f32.
impl From<f32> for Value {
    fn from(x: f32) -> Self {
        Value::Float(x.to_string().parse().unwrap_or(f64::from(x)))
    }
}

impl From<i64> for Value {
    fn from(i: i64) -> Self {
        Value::Int(i)
    }
}

impl From<i32> for Value {
    fn from(i: i32) -> Self {
        Value::Int(i64::from(i))
    }
}

impl From<u32> for Value {
    fn from(i: u32) -> Self {
        Value::Int(i64::from(i))
    }
}

/// Integers beyond `i64::MAX` (never a real step or count) become floats
/// rather than wrapping around.
impl From<u64> for Value {
    fn from(i: u64) -> Self {
        i64::try_from(i).map_or(Value::Float(i as f64), Value::Int)
    }
}

impl From<usize> for Value {
    fn from(i: usize) -> Self {
        Value::from(i as u64)
    }
}

impl From<&str> for Value {
    fn from(s: &str) -> Self {
        Value::Str(s.to_string())
    }
}

impl From<String> for Value {
    fn from(s: String) -> Self {
        Value::Str(s)
    }
}

/// Metrics at one step; the first entry is always `step`.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    entries: Vec<(String, Value)>,
}

impl Record {
    pub fn new(step: u64) -> Self {
        Record {
            entries: vec![("step".to_string(), Value::from(step))],
        }
    }

    /// Builder form of [`Record::set`].
    pub fn with(mut self, key: impl Into<String>, value: impl Into<Value>) -> Self {
        self.set(key, value);
        self
    }

    /// Sets `key`; an existing key keeps its position and gets the new value.
    pub fn set(&mut self, key: impl Into<String>, value: impl Into<Value>) {
        let key = key.into();
        let value = value.into();
        match self.entries.iter_mut().find(|(k, _)| *k == key) {
            Some(entry) => entry.1 = value,
            None => self.entries.push((key, value)),
        }
    }

    pub fn get(&self, key: &str) -> Option<&Value> {
        self.entries.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    /// Entries in insertion order, `step` first.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Value)> {
        self.entries.iter().map(|(k, v)| (k.as_str(), v))
    }
}

impl Serialize for Record {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(self.entries.len()))?;
        for (k, v) in &self.entries {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}

/// Reads a record back from its JSON line, keeping the key order: JSON
/// integers become `Int`, other numbers and the strings `"nan"`, `"inf"`,
/// `"-inf"` become `Float`, other strings stay strings.
impl<'de> serde::Deserialize<'de> for Record {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visit;
        impl<'de> serde::de::Visitor<'de> for Visit {
            type Value = Record;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a metrics record (a JSON object starting with `step`)")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<Record, A::Error> {
                let mut entries = Vec::new();
                while let Some((key, value)) = map.next_entry::<String, serde_json::Value>()? {
                    let value = match value {
                        serde_json::Value::Number(n) => match n.as_i64() {
                            Some(i) => Value::Int(i),
                            None => Value::Float(n.as_f64().unwrap_or(f64::NAN)),
                        },
                        serde_json::Value::String(s) => match s.as_str() {
                            "nan" => Value::Float(f64::NAN),
                            "inf" => Value::Float(f64::INFINITY),
                            "-inf" => Value::Float(f64::NEG_INFINITY),
                            _ => Value::Str(s),
                        },
                        other => {
                            return Err(serde::de::Error::custom(format!(
                                "metric `{key}` is {other}, not a number or a string"
                            )))
                        }
                    };
                    entries.push((key, value));
                }
                if entries.first().map(|(k, _)| k.as_str()) != Some("step") {
                    return Err(serde::de::Error::custom("a record must start with `step`"));
                }
                Ok(Record { entries })
            }
        }
        d.deserialize_map(Visit)
    }
}
