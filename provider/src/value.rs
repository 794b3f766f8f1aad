//! Terraform values: the msgpack `DynamicValue` codec and conversions to JSON.
//!
//! Terraform sends every value as msgpack, typed by the schema: objects and
//! maps as msgpack maps, lists and sets as arrays, numbers as integers,
//! floats or (when neither is exact) decimal strings, and values not known
//! until apply as a msgpack extension. Decoding is schema-directed, so a
//! mismatch is reported with the attribute path where it happened.

use std::collections::BTreeMap;
use std::fmt;

use rmp::Marker;

/// A value's type, as Terraform's type system (cty) spells it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CtyType {
    String,
    Number,
    Bool,
    List(Box<CtyType>),
    Set(Box<CtyType>),
    Map(Box<CtyType>),
    Object(BTreeMap<String, CtyType>),
}

impl CtyType {
    /// The JSON form Terraform expects in a schema attribute's `type`.
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::json;
        match self {
            CtyType::String => json!("string"),
            CtyType::Number => json!("number"),
            CtyType::Bool => json!("bool"),
            CtyType::List(element) => json!(["list", element.to_json()]),
            CtyType::Set(element) => json!(["set", element.to_json()]),
            CtyType::Map(element) => json!(["map", element.to_json()]),
            CtyType::Object(attributes) => {
                let attributes: serde_json::Map<String, serde_json::Value> =
                    attributes.iter().map(|(name, ty)| (name.clone(), ty.to_json())).collect();
                json!(["object", attributes])
            }
        }
    }
}

/// A number as Terraform sends it: arbitrary precision, so big integers and
/// long decimals travel as text.
#[derive(Debug, Clone, PartialEq)]
pub enum Number {
    Int(i64),
    Float(f64),
    /// A decimal that fits neither i64 nor f64 exactly.
    Big(String),
}

impl fmt::Display for Number {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Number::Int(value) => write!(f, "{value}"),
            Number::Float(value) => write!(f, "{value}"),
            Number::Big(text) => f.write_str(text),
        }
    }
}

/// A Terraform value, possibly null or not yet known.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    /// Known only after apply.
    Unknown,
    Bool(bool),
    Number(Number),
    String(String),
    List(Vec<Value>),
    Set(Vec<Value>),
    Map(BTreeMap<String, Value>),
    Object(BTreeMap<String, Value>),
}

/// Where in a value a decode failed, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message} at {path}")]
pub struct DecodeError {
    /// Dotted path such as `manager.email` or `targets["lyon"]`; `(root)` for the top.
    pub path: String,
    pub message: String,
}

impl Value {
    pub fn object(attributes: impl IntoIterator<Item = (&'static str, Value)>) -> Value {
        Value::Object(attributes.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())
    }

    pub fn string(text: impl Into<String>) -> Value {
        Value::String(text.into())
    }

    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }

    pub fn is_unknown(&self) -> bool {
        matches!(self, Value::Unknown)
    }

    /// True when no part of the value is unknown.
    pub fn is_fully_known(&self) -> bool {
        match self {
            Value::Unknown => false,
            Value::List(items) | Value::Set(items) => items.iter().all(Value::is_fully_known),
            Value::Map(items) | Value::Object(items) => items.values().all(Value::is_fully_known),
            _ => true,
        }
    }

    /// An attribute of an object value; `Null` when absent or not an object.
    pub fn get(&self, name: &str) -> &Value {
        static NULL: Value = Value::Null;
        match self {
            Value::Object(attributes) => attributes.get(name).unwrap_or(&NULL),
            _ => &NULL,
        }
    }

    /// Sets an attribute of an object value (no effect on other values).
    pub fn set(&mut self, name: &str, value: Value) {
        if let Value::Object(attributes) = self {
            attributes.insert(name.to_owned(), value);
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(text) => Some(text),
            _ => None,
        }
    }

    /// The known, non-null parts as JSON: unknown and null attributes are left
    /// out, so that a lenient deserializer sees only what is known.
    pub fn to_known_json(&self) -> Option<serde_json::Value> {
        match self {
            Value::Null | Value::Unknown => None,
            Value::Bool(value) => Some(serde_json::Value::Bool(*value)),
            Value::Number(number) => Some(number_to_json(number)),
            Value::String(text) => Some(serde_json::Value::String(text.clone())),
            Value::List(items) | Value::Set(items) => {
                Some(serde_json::Value::Array(items.iter().filter_map(Value::to_known_json).collect()))
            }
            Value::Map(items) | Value::Object(items) => Some(serde_json::Value::Object(
                items.iter().filter_map(|(k, v)| v.to_known_json().map(|v| (k.clone(), v))).collect(),
            )),
        }
    }

    /// The whole value as JSON with nulls kept; `None` if any part is unknown.
    pub fn to_json(&self) -> Option<serde_json::Value> {
        Some(match self {
            Value::Unknown => return None,
            Value::Null => serde_json::Value::Null,
            Value::Bool(value) => serde_json::Value::Bool(*value),
            Value::Number(number) => number_to_json(number),
            Value::String(text) => serde_json::Value::String(text.clone()),
            Value::List(items) | Value::Set(items) => {
                serde_json::Value::Array(items.iter().map(Value::to_json).collect::<Option<_>>()?)
            }
            Value::Map(items) | Value::Object(items) => serde_json::Value::Object(
                items.iter().map(|(k, v)| v.to_json().map(|v| (k.clone(), v))).collect::<Option<_>>()?,
            ),
        })
    }

    /// Builds a value of type `ty` from JSON; object attributes missing from
    /// the JSON become null, attributes the type does not have are an error.
    pub fn from_json(json: &serde_json::Value, ty: &CtyType) -> Result<Value, DecodeError> {
        from_json_at(json, ty, &mut Vec::new())
    }
}

fn number_to_json(number: &Number) -> serde_json::Value {
    match number {
        Number::Int(value) => serde_json::Value::from(*value),
        Number::Float(value) => {
            serde_json::Number::from_f64(*value).map(serde_json::Value::Number).unwrap_or(serde_json::Value::Null)
        }
        Number::Big(text) => text
            .parse::<serde_json::Number>()
            .map(serde_json::Value::Number)
            .unwrap_or_else(|_| serde_json::Value::String(text.clone())),
    }
}

fn render_path(path: &[String]) -> String {
    if path.is_empty() {
        return "(root)".into();
    }
    let mut text = String::new();
    for step in path {
        if step.starts_with('[') || text.is_empty() {
            text.push_str(step);
        } else {
            text.push('.');
            text.push_str(step);
        }
    }
    text
}

fn decode_error(path: &[String], message: impl Into<String>) -> DecodeError {
    DecodeError { path: render_path(path), message: message.into() }
}

fn from_json_at(json: &serde_json::Value, ty: &CtyType, path: &mut Vec<String>) -> Result<Value, DecodeError> {
    use serde_json::Value as J;
    if json.is_null() {
        return Ok(Value::Null);
    }
    Ok(match (ty, json) {
        (CtyType::String, J::String(text)) => Value::String(text.clone()),
        (CtyType::Bool, J::Bool(value)) => Value::Bool(*value),
        (CtyType::Number, J::Number(number)) => Value::Number(if let Some(value) = number.as_i64() {
            Number::Int(value)
        } else if let Some(value) = number.as_u64() {
            Number::Big(value.to_string())
        } else {
            Number::Float(number.as_f64().unwrap_or_default())
        }),
        (CtyType::Number, J::String(text)) if text.parse::<f64>().is_ok() => Value::Number(Number::Big(text.clone())),
        (CtyType::List(element) | CtyType::Set(element), J::Array(items)) => {
            let mut values = Vec::with_capacity(items.len());
            for (index, item) in items.iter().enumerate() {
                path.push(format!("[{index}]"));
                values.push(from_json_at(item, element, path)?);
                path.pop();
            }
            if matches!(ty, CtyType::Set(_)) { Value::Set(values) } else { Value::List(values) }
        }
        (CtyType::Map(element), J::Object(items)) => {
            let mut values = BTreeMap::new();
            for (key, item) in items {
                path.push(format!("[{key:?}]"));
                values.insert(key.clone(), from_json_at(item, element, path)?);
                path.pop();
            }
            Value::Map(values)
        }
        (CtyType::Object(attributes), J::Object(items)) => {
            if let Some(extra) = items.keys().find(|key| !attributes.contains_key(*key)) {
                return Err(decode_error(path, format!("unexpected attribute {extra:?}")));
            }
            let mut values = BTreeMap::new();
            for (name, attribute_type) in attributes {
                path.push(name.clone());
                let value = match items.get(name) {
                    Some(item) => from_json_at(item, attribute_type, path)?,
                    None => Value::Null,
                };
                path.pop();
                values.insert(name.clone(), value);
            }
            Value::Object(values)
        }
        _ => return Err(decode_error(path, format!("expected a {}, found {json}", type_name(ty)))),
    })
}

fn type_name(ty: &CtyType) -> &'static str {
    match ty {
        CtyType::String => "string",
        CtyType::Number => "number",
        CtyType::Bool => "bool",
        CtyType::List(_) => "list",
        CtyType::Set(_) => "set",
        CtyType::Map(_) => "map",
        CtyType::Object(_) => "object",
    }
}

// ---- msgpack ----

/// The msgpack extension type cty uses for unknown values (12 carries refinements).
const UNKNOWN_EXTENSION: i8 = 0;

/// Decodes msgpack bytes as a value of type `ty`.
pub fn decode_msgpack(bytes: &[u8], ty: &CtyType) -> Result<Value, DecodeError> {
    let mut reader = Reader { bytes, position: 0 };
    let mut path = Vec::new();
    let value = reader.value(ty, &mut path)?;
    if reader.position != bytes.len() {
        return Err(decode_error(&path, format!("{} trailing bytes after the value", bytes.len() - reader.position)));
    }
    Ok(value)
}

struct Reader<'a> {
    bytes: &'a [u8],
    position: usize,
}

impl Reader<'_> {
    fn take(&mut self, count: usize, path: &[String]) -> Result<&[u8], DecodeError> {
        let end = self.position.checked_add(count).filter(|end| *end <= self.bytes.len());
        let Some(end) = end else {
            return Err(decode_error(path, "the value ends early (truncated msgpack)"));
        };
        let slice = &self.bytes[self.position..end];
        self.position = end;
        Ok(slice)
    }

    fn uint(&mut self, width: usize, path: &[String]) -> Result<u64, DecodeError> {
        Ok(self.take(width, path)?.iter().fold(0u64, |acc, byte| (acc << 8) | u64::from(*byte)))
    }

    fn marker(&mut self, path: &[String]) -> Result<Marker, DecodeError> {
        Ok(Marker::from_u8(self.take(1, path)?[0]))
    }

    /// The length that follows a string/array/map/ext marker, if it is one.
    fn length(&mut self, marker: Marker, path: &[String]) -> Result<Option<usize>, DecodeError> {
        let length = match marker {
            Marker::FixStr(n) | Marker::FixArray(n) | Marker::FixMap(n) => u64::from(n),
            Marker::Str8 | Marker::Bin8 | Marker::Ext8 => self.uint(1, path)?,
            Marker::Str16 | Marker::Bin16 | Marker::Array16 | Marker::Map16 | Marker::Ext16 => self.uint(2, path)?,
            Marker::Str32 | Marker::Bin32 | Marker::Array32 | Marker::Map32 | Marker::Ext32 => self.uint(4, path)?,
            Marker::FixExt1 => 1,
            Marker::FixExt2 => 2,
            Marker::FixExt4 => 4,
            Marker::FixExt8 => 8,
            Marker::FixExt16 => 16,
            _ => return Ok(None),
        };
        usize::try_from(length).map(Some).map_err(|_| decode_error(path, "length too large"))
    }

    fn value(&mut self, ty: &CtyType, path: &mut Vec<String>) -> Result<Value, DecodeError> {
        let marker = self.marker(path)?;
        match marker {
            Marker::Null => return Ok(Value::Null),
            Marker::FixExt1
            | Marker::FixExt2
            | Marker::FixExt4
            | Marker::FixExt8
            | Marker::FixExt16
            | Marker::Ext8
            | Marker::Ext16
            | Marker::Ext32 => {
                let length = self.length(marker, path)?.unwrap_or_default();
                let _extension_type = self.take(1, path)?[0] as i8;
                self.take(length, path)?;
                // Type 0 is a plain unknown; type 12 adds refinements (e.g. "not null")
                // that Atrium does not need to read.
                return Ok(Value::Unknown);
            }
            _ => {}
        }
        match ty {
            CtyType::Bool => match marker {
                Marker::True => Ok(Value::Bool(true)),
                Marker::False => Ok(Value::Bool(false)),
                other => Err(decode_error(path, format!("expected a bool, found msgpack {other:?}"))),
            },
            CtyType::Number => self.number(marker, path).map(Value::Number),
            CtyType::String => {
                let length = self.string_length(marker, path)?;
                let bytes = self.take(length, path)?;
                String::from_utf8(bytes.to_vec())
                    .map(Value::String)
                    .map_err(|_| decode_error(path, "a string is not valid UTF-8"))
            }
            CtyType::List(element) | CtyType::Set(element) => {
                let length = match marker {
                    Marker::FixArray(_) | Marker::Array16 | Marker::Array32 => {
                        self.length(marker, path)?.unwrap_or_default()
                    }
                    other => {
                        return Err(decode_error(
                            path,
                            format!("expected a {}, found msgpack {other:?}", type_name(ty)),
                        ));
                    }
                };
                let mut items = Vec::with_capacity(length.min(4096));
                for index in 0..length {
                    path.push(format!("[{index}]"));
                    items.push(self.value(element, path)?);
                    path.pop();
                }
                Ok(if matches!(ty, CtyType::Set(_)) { Value::Set(items) } else { Value::List(items) })
            }
            CtyType::Map(element) => {
                let length = self.map_length(marker, ty, path)?;
                let mut items = BTreeMap::new();
                for _ in 0..length {
                    let key = self.key(path)?;
                    path.push(format!("[{key:?}]"));
                    let value = self.value(element, path)?;
                    path.pop();
                    items.insert(key, value);
                }
                Ok(Value::Map(items))
            }
            CtyType::Object(attributes) => {
                let length = self.map_length(marker, ty, path)?;
                let mut items = BTreeMap::new();
                for _ in 0..length {
                    let key = self.key(path)?;
                    let Some(attribute_type) = attributes.get(&key) else {
                        return Err(decode_error(path, format!("unexpected attribute {key:?}")));
                    };
                    path.push(key.clone());
                    let value = self.value(attribute_type, path)?;
                    path.pop();
                    items.insert(key, value);
                }
                for name in attributes.keys() {
                    items.entry(name.clone()).or_insert(Value::Null);
                }
                Ok(Value::Object(items))
            }
        }
    }

    fn string_length(&mut self, marker: Marker, path: &[String]) -> Result<usize, DecodeError> {
        match marker {
            Marker::FixStr(_)
            | Marker::Str8
            | Marker::Str16
            | Marker::Str32
            | Marker::Bin8
            | Marker::Bin16
            | Marker::Bin32 => Ok(self.length(marker, path)?.unwrap_or_default()),
            other => Err(decode_error(path, format!("expected a string, found msgpack {other:?}"))),
        }
    }

    fn map_length(&mut self, marker: Marker, ty: &CtyType, path: &[String]) -> Result<usize, DecodeError> {
        match marker {
            Marker::FixMap(_) | Marker::Map16 | Marker::Map32 => Ok(self.length(marker, path)?.unwrap_or_default()),
            other => Err(decode_error(path, format!("expected an {}, found msgpack {other:?}", type_name(ty)))),
        }
    }

    fn key(&mut self, path: &[String]) -> Result<String, DecodeError> {
        let marker = self.marker(path)?;
        let length = self.string_length(marker, path)?;
        let bytes = self.take(length, path)?;
        String::from_utf8(bytes.to_vec()).map_err(|_| decode_error(path, "a key is not valid UTF-8"))
    }

    fn number(&mut self, marker: Marker, path: &[String]) -> Result<Number, DecodeError> {
        Ok(match marker {
            Marker::FixPos(n) => Number::Int(i64::from(n)),
            Marker::FixNeg(n) => Number::Int(i64::from(n)),
            Marker::U8 => Number::Int(self.uint(1, path)? as i64),
            Marker::U16 => Number::Int(self.uint(2, path)? as i64),
            Marker::U32 => Number::Int(self.uint(4, path)? as i64),
            Marker::U64 => {
                let value = self.uint(8, path)?;
                i64::try_from(value).map(Number::Int).unwrap_or_else(|_| Number::Big(value.to_string()))
            }
            Marker::I8 => Number::Int(i64::from(self.uint(1, path)? as u8 as i8)),
            Marker::I16 => Number::Int(i64::from(self.uint(2, path)? as u16 as i16)),
            Marker::I32 => Number::Int(i64::from(self.uint(4, path)? as u32 as i32)),
            Marker::I64 => Number::Int(self.uint(8, path)? as i64),
            Marker::F32 => Number::Float(f64::from(f32::from_bits(self.uint(4, path)? as u32))),
            Marker::F64 => Number::Float(f64::from_bits(self.uint(8, path)?)),
            Marker::FixStr(_) | Marker::Str8 | Marker::Str16 | Marker::Str32 => {
                let length = self.length(marker, path)?.unwrap_or_default();
                let text = String::from_utf8(self.take(length, path)?.to_vec())
                    .map_err(|_| decode_error(path, "a number is not valid UTF-8"))?;
                if text.parse::<f64>().is_err() {
                    return Err(decode_error(path, format!("{text:?} is not a number")));
                }
                Number::Big(text)
            }
            other => return Err(decode_error(path, format!("expected a number, found msgpack {other:?}"))),
        })
    }
}

/// Encodes a value as msgpack for Terraform; object attributes come in the
/// type's order and missing ones as null.
pub fn encode_msgpack(value: &Value, ty: &CtyType) -> Vec<u8> {
    let mut out = Vec::with_capacity(256);
    encode_into(&mut out, value, ty);
    out
}

fn encode_into(out: &mut Vec<u8>, value: &Value, ty: &CtyType) {
    // Writing into a Vec cannot fail, so the results are ignored below.
    match (value, ty) {
        (Value::Null, _) => {
            let _ = rmp::encode::write_nil(out);
        }
        (Value::Unknown, _) => {
            let _ = rmp::encode::write_ext_meta(out, 1, UNKNOWN_EXTENSION);
            out.push(0);
        }
        (Value::Bool(flag), _) => {
            let _ = rmp::encode::write_bool(out, *flag);
        }
        (Value::Number(number), _) => match number {
            Number::Int(value) => {
                let _ = rmp::encode::write_sint(out, *value);
            }
            Number::Float(value) if value.fract() == 0.0 && value.abs() < 9.0e15 => {
                let _ = rmp::encode::write_sint(out, *value as i64);
            }
            Number::Float(value) => {
                let _ = rmp::encode::write_f64(out, *value);
            }
            Number::Big(text) => {
                let _ = rmp::encode::write_str(out, text);
            }
        },
        (Value::String(text), _) => {
            let _ = rmp::encode::write_str(out, text);
        }
        (Value::List(items) | Value::Set(items), CtyType::List(element) | CtyType::Set(element)) => {
            let _ = rmp::encode::write_array_len(out, items.len() as u32);
            for item in items {
                encode_into(out, item, element);
            }
        }
        (Value::Map(items), CtyType::Map(element)) => {
            let _ = rmp::encode::write_map_len(out, items.len() as u32);
            for (key, item) in items {
                let _ = rmp::encode::write_str(out, key);
                encode_into(out, item, element);
            }
        }
        (Value::Object(items), CtyType::Object(attributes)) => {
            let _ = rmp::encode::write_map_len(out, attributes.len() as u32);
            for (name, attribute_type) in attributes {
                let _ = rmp::encode::write_str(out, name);
                encode_into(out, items.get(name).unwrap_or(&Value::Null), attribute_type);
            }
        }
        // A value that does not match its type is a bug in the provider; null
        // makes Terraform report an inconsistent result rather than crash.
        _ => {
            let _ = rmp::encode::write_nil(out);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tenant_type() -> CtyType {
        CtyType::Object(BTreeMap::from([
            ("name".to_owned(), CtyType::String),
            ("quota".to_owned(), CtyType::Number),
            ("on".to_owned(), CtyType::Bool),
            ("tags".to_owned(), CtyType::Map(Box::new(CtyType::String))),
            ("channels".to_owned(), CtyType::Set(Box::new(CtyType::String))),
            ("manager".to_owned(), CtyType::Object(BTreeMap::from([("email".to_owned(), CtyType::String)]))),
            (
                "items".to_owned(),
                CtyType::List(Box::new(CtyType::Object(BTreeMap::from([("n".to_owned(), CtyType::Number)])))),
            ),
        ]))
    }

    fn round_trip(value: Value, ty: &CtyType) {
        let bytes = encode_msgpack(&value, ty);
        assert_eq!(decode_msgpack(&bytes, ty).unwrap(), value);
    }

    #[test]
    fn values_round_trip_with_nulls_and_unknowns_at_every_depth() {
        let ty = tenant_type();
        round_trip(Value::Null, &ty);
        round_trip(Value::Unknown, &ty);
        let value = Value::object([
            ("name", Value::string("acme")),
            ("quota", Value::Number(Number::Int(-7))),
            ("on", Value::Unknown),
            ("tags", Value::Map(BTreeMap::from([("a".to_owned(), Value::Unknown), ("b".to_owned(), Value::Null)]))),
            ("channels", Value::Set(vec![Value::string("email"), Value::Unknown])),
            ("manager", Value::object([("email", Value::Unknown)])),
            ("items", Value::List(vec![Value::object([("n", Value::Number(Number::Float(2.5)))]), Value::Unknown])),
        ]);
        round_trip(value, &ty);
    }

    #[test]
    fn numbers_keep_their_precision() {
        let ty = CtyType::Number;
        for number in [
            Number::Int(0),
            Number::Int(i64::MAX),
            Number::Int(i64::MIN),
            Number::Float(0.1),
            Number::Big("123456789012345678901234567890".into()),
        ] {
            round_trip(Value::Number(number), &ty);
        }
        // u64 beyond i64 arrives as a big number.
        let mut bytes = vec![0xcf];
        bytes.extend_from_slice(&u64::MAX.to_be_bytes());
        assert_eq!(decode_msgpack(&bytes, &ty).unwrap(), Value::Number(Number::Big(u64::MAX.to_string())));
        // A whole float is written as an integer, as cty does.
        assert_eq!(encode_msgpack(&Value::Number(Number::Float(3.0)), &ty), vec![0x03]);
    }

    #[test]
    fn refined_unknowns_decode_as_unknown() {
        // ext type 12 with a refinement payload (as Terraform 1.6+ sends).
        let bytes = [0xc7, 0x03, 0x0c, 0x81, 0x01, 0xc2];
        assert_eq!(decode_msgpack(&bytes, &CtyType::String).unwrap(), Value::Unknown);
    }

    #[test]
    fn decode_errors_carry_the_attribute_path() {
        let ty = tenant_type();
        let mut bytes = Vec::new();
        rmp::encode::write_map_len(&mut bytes, 1).unwrap();
        rmp::encode::write_str(&mut bytes, "manager").unwrap();
        rmp::encode::write_map_len(&mut bytes, 1).unwrap();
        rmp::encode::write_str(&mut bytes, "email").unwrap();
        rmp::encode::write_sint(&mut bytes, 5).unwrap();
        let error = decode_msgpack(&bytes, &ty).unwrap_err();
        assert_eq!(error.path, "manager.email");
        assert!(error.message.contains("expected a string"), "{}", error.message);

        let mut bytes = Vec::new();
        rmp::encode::write_map_len(&mut bytes, 1).unwrap();
        rmp::encode::write_str(&mut bytes, "tags").unwrap();
        rmp::encode::write_map_len(&mut bytes, 1).unwrap();
        rmp::encode::write_str(&mut bytes, "x").unwrap();
        rmp::encode::write_bool(&mut bytes, true).unwrap();
        assert_eq!(decode_msgpack(&bytes, &ty).unwrap_err().path, "tags[\"x\"]");

        let truncated = &encode_msgpack(&Value::string("hello"), &CtyType::String)[..3];
        assert!(decode_msgpack(truncated, &CtyType::String).unwrap_err().message.contains("truncated"));
    }

    #[test]
    fn known_json_leaves_out_unknowns_and_nulls() {
        let value = Value::object([
            ("name", Value::string("acme")),
            ("quota", Value::Unknown),
            ("manager", Value::object([("email", Value::Null)])),
        ]);
        assert_eq!(value.to_known_json().unwrap(), serde_json::json!({"name": "acme", "manager": {}}));
        assert_eq!(value.to_json(), None);
    }

    #[test]
    fn json_converts_by_type() {
        let ty = tenant_type();
        let value = Value::from_json(&serde_json::json!({"name": "acme", "quota": 3, "channels": ["x"]}), &ty).unwrap();
        assert_eq!(value.get("quota"), &Value::Number(Number::Int(3)));
        assert_eq!(value.get("on"), &Value::Null);
        assert_eq!(value.get("channels"), &Value::Set(vec![Value::string("x")]));
        let error = Value::from_json(&serde_json::json!({"name": 5}), &ty).unwrap_err();
        assert_eq!(error.path, "name");
        let error = Value::from_json(&serde_json::json!({"nope": 5}), &ty).unwrap_err();
        assert!(error.message.contains("nope"));
    }
}
