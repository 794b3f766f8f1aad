//! The functions a CLI configuration may call: Terraform's names and
//! meanings, for what partners need to turn spreadsheets and templates into
//! resources (`csvdecode(file("customers.csv"))`, `format`, `merge`, `range`, …).
//!
//! Paths given to `file` are relative to the working directory, which is the
//! configuration's directory (`-chdir` switches to it first), as in Terraform.

use hcl::eval::{Context, FuncArgs, FuncDef, ParamType};
use hcl::{Map, Value};

/// Declares every function in `context`.
pub fn declare(context: &mut Context<'_>) {
    let string = || ParamType::String;
    let any = || ParamType::Any;
    let one = |param: ParamType, func: hcl::eval::Func| FuncDef::builder().param(param).build(func);
    context.declare_func("file", one(string(), file));
    context.declare_func("csvdecode", one(string(), csvdecode));
    context.declare_func("jsondecode", one(string(), jsondecode));
    context.declare_func("jsonencode", one(any(), jsonencode));
    context.declare_func("lower", one(string(), |args| Ok(Value::from(text(&args, 0).to_lowercase()))));
    context.declare_func("upper", one(string(), |args| Ok(Value::from(text(&args, 0).to_uppercase()))));
    context.declare_func("trimspace", one(string(), |args| Ok(Value::from(text(&args, 0).trim()))));
    context.declare_func("length", one(any(), length));
    context.declare_func("keys", one(ParamType::object_of(any()), keys));
    context.declare_func("values", one(ParamType::object_of(any()), values));
    context.declare_func("toset", one(ParamType::array_of(any()), toset));
    context.declare_func("tostring", one(any(), tostring));
    context.declare_func("tonumber", one(any(), tonumber));
    context.declare_func(
        "replace",
        FuncDef::builder()
            .params([string(), string(), string()])
            .build(|args| Ok(Value::from(text(&args, 0).replace(text(&args, 1), text(&args, 2))))),
    );
    context.declare_func("split", FuncDef::builder().params([string(), string()]).build(split));
    context.declare_func("join", FuncDef::builder().params([string(), ParamType::array_of(any())]).build(join));
    context.declare_func("contains", FuncDef::builder().params([ParamType::array_of(any()), any()]).build(contains));
    context.declare_func("format", FuncDef::builder().param(string()).variadic_param(any()).build(format));
    context.declare_func("merge", FuncDef::builder().variadic_param(ParamType::object_of(any())).build(merge));
    context.declare_func("concat", FuncDef::builder().variadic_param(ParamType::array_of(any())).build(concat));
    context.declare_func("coalesce", FuncDef::builder().variadic_param(any()).build(coalesce));
    context.declare_func("range", FuncDef::builder().variadic_param(ParamType::Number).build(range));
    context.declare_func(
        "lookup",
        FuncDef::builder().params([ParamType::object_of(any()), string()]).variadic_param(any()).build(lookup),
    );
}

/// The string argument at `index` (the parameter types were checked).
fn text(args: &FuncArgs, index: usize) -> &str {
    args.get(index).and_then(Value::as_str).unwrap_or_default()
}

fn file(args: FuncArgs) -> Result<Value, String> {
    let path = text(&args, 0);
    std::fs::read_to_string(path).map(Value::from).map_err(|error| format!("cannot read {path:?}: {error}"))
}

/// A CSV text with a header row as a list of objects, one per row, keyed by
/// the header's column names; every value a string (as Terraform's).
fn csvdecode(args: FuncArgs) -> Result<Value, String> {
    let mut reader = csv::ReaderBuilder::new().has_headers(true).from_reader(text(&args, 0).as_bytes());
    let headers = reader.headers().map_err(|error| format!("CSV header: {error}"))?.clone();
    let mut rows = Vec::new();
    for (index, record) in reader.records().enumerate() {
        // Row 1 is the header, so data starts on line 2.
        let record = record.map_err(|error| format!("CSV row {}: {error}", index + 2))?;
        if record.len() != headers.len() {
            return Err(format!("CSV row {} has {} fields, the header has {}", index + 2, record.len(), headers.len()));
        }
        let row: Map<String, Value> =
            headers.iter().zip(record.iter()).map(|(name, value)| (name.to_owned(), Value::from(value))).collect();
        rows.push(Value::Object(row));
    }
    Ok(Value::Array(rows))
}

fn jsondecode(args: FuncArgs) -> Result<Value, String> {
    let json: serde_json::Value =
        serde_json::from_str(text(&args, 0)).map_err(|error| format!("invalid JSON: {error}"))?;
    hcl::to_value(json).map_err(|error| error.to_string())
}

fn jsonencode(args: FuncArgs) -> Result<Value, String> {
    serde_json::to_string(&args[0]).map(Value::from).map_err(|error| error.to_string())
}

fn length(args: FuncArgs) -> Result<Value, String> {
    match &args[0] {
        Value::String(text) => Ok(Value::from(text.chars().count())),
        Value::Array(items) => Ok(Value::from(items.len())),
        Value::Object(items) => Ok(Value::from(items.len())),
        other => Err(format!("length takes a string, list or map, not {other}")),
    }
}

fn keys(args: FuncArgs) -> Result<Value, String> {
    let object = args[0].as_object().ok_or("keys takes a map")?;
    Ok(Value::Array(object.keys().map(|key| Value::from(key.as_str())).collect()))
}

fn values(args: FuncArgs) -> Result<Value, String> {
    let object = args[0].as_object().ok_or("values takes a map")?;
    Ok(Value::Array(object.values().cloned().collect()))
}

/// A list without repeated elements, in first-seen order (a set, as far as
/// `for_each` is concerned).
fn toset(args: FuncArgs) -> Result<Value, String> {
    let mut seen = Vec::new();
    for item in args[0].as_array().ok_or("toset takes a list")? {
        if !seen.contains(item) {
            seen.push(item.clone());
        }
    }
    Ok(Value::Array(seen))
}

/// The most numbers `range` makes, as in Terraform.
const RANGE_LIMIT: usize = 1024;

/// Terraform's `range(limit)`, `range(start, limit)` and `range(start,
/// limit, step)`: from `start` (default 0) up to, not including, `limit`,
/// by `step` (default 1, or -1 when `limit` is below `start`).
fn range(args: FuncArgs) -> Result<Value, String> {
    let numbers: Vec<f64> =
        args.iter().map(|arg| arg.as_f64().ok_or("range takes numbers")).collect::<Result<_, _>>()?;
    let (start, limit, step) = match numbers[..] {
        [limit] => (0.0, limit, 1.0),
        [start, limit] => (start, limit, if limit < start { -1.0 } else { 1.0 }),
        [start, limit, step] => (start, limit, step),
        _ => return Err(format!("range takes 1 to 3 numbers, not {}", numbers.len())),
    };
    if step == 0.0 {
        return Err("range's step cannot be zero".to_owned());
    }
    if (step > 0.0 && limit < start) || (step < 0.0 && limit > start) {
        return Err(format!("range's step {step} never reaches {limit} from {start}"));
    }
    let mut values = Vec::new();
    let mut next = start;
    while (step > 0.0 && next < limit) || (step < 0.0 && next > limit) {
        if values.len() == RANGE_LIMIT {
            return Err(format!(
                "range would make more than {RANGE_LIMIT} numbers: use a shorter range or a larger step"
            ));
        }
        values.push(number(next));
        next += step;
    }
    Ok(Value::Array(values))
}

/// A number as HCL holds it: whole numbers as integers.
fn number(value: f64) -> Value {
    if value.fract() == 0.0 && value.abs() < 9.0e15 { Value::from(value as i64) } else { Value::from(value) }
}

/// A value as Terraform writes it into a string.
fn display(value: &Value) -> Result<String, String> {
    match value {
        Value::String(text) => Ok(text.clone()),
        Value::Number(number) => Ok(number.to_string()),
        Value::Bool(flag) => Ok(flag.to_string()),
        Value::Null => Err("a null value cannot be turned into a string".to_owned()),
        other => Err(format!("{other} is not a primitive value")),
    }
}

fn tostring(args: FuncArgs) -> Result<Value, String> {
    display(&args[0]).map(Value::from)
}

fn tonumber(args: FuncArgs) -> Result<Value, String> {
    match &args[0] {
        Value::Number(_) => Ok(args[0].clone()),
        Value::String(text) => {
            let number: serde_json::Number = text.trim().parse().map_err(|_| format!("{text:?} is not a number"))?;
            hcl::to_value(number).map_err(|error| error.to_string())
        }
        other => Err(format!("{other} cannot be turned into a number")),
    }
}

fn split(args: FuncArgs) -> Result<Value, String> {
    let (separator, text) = (text(&args, 0), text(&args, 1));
    if text.is_empty() {
        return Ok(Value::Array(Vec::new()));
    }
    Ok(Value::Array(text.split(separator).map(Value::from).collect()))
}

fn join(args: FuncArgs) -> Result<Value, String> {
    let items = args[1].as_array().ok_or("join takes a list")?;
    let parts = items.iter().map(display).collect::<Result<Vec<_>, _>>()?;
    Ok(Value::from(parts.join(text(&args, 0))))
}

fn contains(args: FuncArgs) -> Result<Value, String> {
    Ok(Value::Bool(args[0].as_array().is_some_and(|items| items.contains(&args[1]))))
}

/// One `format` verb's flags, width and precision (`%-8s`, `%04d`, `%.2f`).
#[derive(Default)]
struct Spec {
    left: bool,
    zero: bool,
    plus: bool,
    width: usize,
    precision: Option<usize>,
}

impl Spec {
    /// `text` padded to the width: spaces (or zeros after the sign, for numbers) on the left, or
    /// spaces on the right with `-`.
    fn pad(&self, text: String, numeric: bool) -> String {
        let length = text.chars().count();
        if length >= self.width {
            return text;
        }
        let fill = self.width - length;
        if self.left {
            format!("{text}{}", " ".repeat(fill))
        } else if self.zero && numeric {
            let (sign, digits) = match text.strip_prefix(['-', '+']) {
                Some(rest) => (&text[..1], rest),
                None => ("", text.as_str()),
            };
            format!("{sign}{}{digits}", "0".repeat(fill))
        } else {
            format!("{}{text}", " ".repeat(fill))
        }
    }
}

fn number_of(value: &Value, verb: char) -> Result<f64, String> {
    match value {
        Value::Number(number) => number.as_f64().ok_or_else(|| format!("%{verb} needs a number")),
        Value::String(text) => text.trim().parse().map_err(|_| format!("%{verb} needs a number, not {text:?}")),
        other => Err(format!("%{verb} needs a number, not {other}")),
    }
}

fn integer_of(value: &Value, verb: char) -> Result<i64, String> {
    let number = number_of(value, verb)?;
    if number.fract() != 0.0 || number.abs() > 9.0e15 {
        return Err(format!("%{verb} needs a whole number, not {number}"));
    }
    Ok(number as i64)
}

/// Terraform's `format`: the verbs `%s %v %q %d %x %X %o %b %f %e %g %t %%`,
/// with the flags `-`, `0` and `+`, a width and a precision.
fn format(args: FuncArgs) -> Result<Value, String> {
    let spec_text = text(&args, 0);
    let mut rest = args.variadic_args();
    let mut out = String::with_capacity(spec_text.len());
    let mut chars = spec_text.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        if chars.peek() == Some(&'%') {
            chars.next();
            out.push('%');
            continue;
        }
        let mut spec = Spec::default();
        while let Some(flag) = chars.next_if(|c| matches!(c, '-' | '0' | '+' | ' ' | '#')) {
            match flag {
                '-' => spec.left = true,
                '0' => spec.zero = true,
                '+' => spec.plus = true,
                _ => {}
            }
        }
        while let Some(digit) = chars.next_if(char::is_ascii_digit) {
            spec.width = spec.width * 10 + digit.to_digit(10).unwrap_or(0) as usize;
        }
        if chars.next_if_eq(&'.').is_some() {
            let mut precision = 0;
            while let Some(digit) = chars.next_if(char::is_ascii_digit) {
                precision = precision * 10 + digit.to_digit(10).unwrap_or(0) as usize;
            }
            spec.precision = Some(precision);
        }
        let verb = chars.next().ok_or("format ends in an unfinished verb")?;
        let value = rest.next().ok_or_else(|| format!("format has more verbs than arguments (at %{verb})"))?;
        let signed = |number: String, negative: bool| {
            if spec.plus && !negative { format!("+{number}") } else { number }
        };
        let (text, numeric) = match verb {
            's' | 'v' => {
                let text = display(value)?;
                match spec.precision {
                    Some(precision) => (text.chars().take(precision).collect(), false),
                    None => (text, false),
                }
            }
            'q' => (format!("{:?}", display(value)?), false),
            't' => match value {
                Value::Bool(flag) => (flag.to_string(), false),
                other => return Err(format!("%t needs a bool, not {other}")),
            },
            'd' => {
                let number = integer_of(value, verb)?;
                (signed(number.to_string(), number < 0), true)
            }
            'x' => (format!("{:x}", integer_of(value, verb)?), true),
            'X' => (format!("{:X}", integer_of(value, verb)?), true),
            'o' => (format!("{:o}", integer_of(value, verb)?), true),
            'b' => (format!("{:b}", integer_of(value, verb)?), true),
            'f' | 'e' | 'g' => {
                let number = number_of(value, verb)?;
                let precision = spec.precision.unwrap_or(6);
                let text = match verb {
                    'f' => format!("{number:.precision$}"),
                    'e' => format!("{number:.precision$e}"),
                    _ => number.to_string(),
                };
                (signed(text, number < 0.0), true)
            }
            other => {
                return Err(format!(
                    "format verb %{other} is not supported (use %s, %v, %q, %d, %x, %X, %o, %b, %f, %e, %g, %t or %%)"
                ));
            }
        };
        out.push_str(&spec.pad(text, numeric));
    }
    if rest.next().is_some() {
        return Err("format has more arguments than verbs".to_owned());
    }
    Ok(Value::from(out))
}

fn merge(args: FuncArgs) -> Result<Value, String> {
    let mut merged = Map::new();
    for object in args.iter() {
        for (key, value) in object.as_object().ok_or("merge takes maps")? {
            merged.insert(key.clone(), value.clone());
        }
    }
    Ok(Value::Object(merged))
}

fn concat(args: FuncArgs) -> Result<Value, String> {
    let mut all = Vec::new();
    for list in args.iter() {
        all.extend(list.as_array().ok_or("concat takes lists")?.iter().cloned());
    }
    Ok(Value::Array(all))
}

fn coalesce(args: FuncArgs) -> Result<Value, String> {
    args.iter()
        .find(|value| !value.is_null() && value.as_str() != Some(""))
        .cloned()
        .ok_or_else(|| "coalesce: every argument is null or empty".to_owned())
}

/// `lookup(map, key)` or `lookup(map, key, default)`.
fn lookup(args: FuncArgs) -> Result<Value, String> {
    let object = args[0].as_object().ok_or("lookup takes a map")?;
    let key = text(&args, 1);
    if let Some(value) = object.get(key) {
        return Ok(value.clone());
    }
    let mut defaults = args.variadic_args();
    match (defaults.next(), defaults.next()) {
        (Some(default), None) => Ok(default.clone()),
        (None, _) => Err(format!("the map has no key {key:?} and lookup was given no default")),
        (Some(_), Some(_)) => Err("lookup takes a map, a key and at most one default".to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use hcl::eval::Evaluate;

    use super::*;

    fn eval(expression: &str) -> Result<Value, String> {
        let mut context = Context::new();
        declare(&mut context);
        let expression: hcl::Expression = expression.parse().map_err(|e: hcl::Error| e.to_string())?;
        expression.evaluate(&context).map_err(|error| error.to_string())
    }

    fn json(expression: &str) -> serde_json::Value {
        serde_json::to_value(eval(expression).unwrap()).unwrap()
    }

    #[test]
    fn csv_rows_become_objects_keyed_by_the_header() {
        let rows = json(r#"csvdecode("name,tier\nacme,business\n\"b, inc\",starter\n")"#);
        assert_eq!(
            rows,
            serde_json::json!([{"name": "acme", "tier": "business"}, {"name": "b, inc", "tier": "starter"}])
        );
        let error = eval(r#"csvdecode("name,tier\nacme\n")"#).unwrap_err();
        assert!(error.contains("row 2"), "{error}");
    }

    #[test]
    fn strings_format_and_replace_like_terraform() {
        assert_eq!(json(r#"format("%s-%d (%q) 100%%", "acme", 7, "x")"#), "acme-7 (\"x\") 100%");
        assert_eq!(
            json(r#"format("bulk-%04d|%-5s|%5s|%.2f|%x|%+d|%t", 7, "ab", "cd", 3.14159, 255, 3, true)"#),
            "bulk-0007|ab   |   cd|3.14|ff|+3|true"
        );
        assert_eq!(json(r#"format("%05d", -42)"#), "-0042");
        assert_eq!(json(r#"lower(replace("ACME Inc", " ", "-"))"#), "acme-inc");
        assert!(eval(r#"format("%s %s", "one")"#).unwrap_err().contains("more verbs"));
        assert!(eval(r#"format("%d", "one")"#).unwrap_err().contains("needs a number"));
        assert!(eval(r#"format("%d", 1.5)"#).unwrap_err().contains("whole number"));
        assert_eq!(json(r#"join(",", split(";", "a;b"))"#), "a,b");
    }

    #[test]
    fn maps_merge_and_look_up_with_defaults() {
        assert_eq!(json(r#"merge({a = 1, b = 2}, {b = 3})"#), serde_json::json!({"a": 1, "b": 3}));
        assert_eq!(json(r#"lookup({a = "x"}, "a")"#), "x");
        assert_eq!(json(r#"lookup({a = "x"}, "b", "d")"#), "d");
        assert!(eval(r#"lookup({a = "x"}, "b")"#).unwrap_err().contains("no key"));
        assert_eq!(json(r#"jsondecode("{\"k\": [1, true]}")"#), serde_json::json!({"k": [1, true]}));
        assert_eq!(json(r#"toset(["a", "b", "a"])"#), serde_json::json!(["a", "b"]));
        assert_eq!(json(r#"tonumber("42")"#), 42);
    }

    #[test]
    fn range_counts_like_terraform() {
        assert_eq!(json("range(3)"), serde_json::json!([0, 1, 2]));
        assert_eq!(json("range(1, 4)"), serde_json::json!([1, 2, 3]));
        assert_eq!(json("range(4, 1)"), serde_json::json!([4, 3, 2]));
        assert_eq!(json("range(0, 1, 0.25)"), serde_json::json!([0, 0.25, 0.5, 0.75]));
        assert_eq!(json("range(0)"), serde_json::json!([]));
        assert_eq!(json(r#"[for i in range(2) : format("c%03d", i)]"#), serde_json::json!(["c000", "c001"]));
        assert!(eval("range(1, 5, 0)").unwrap_err().contains("zero"));
        assert!(eval("range(1, 5, -1)").unwrap_err().contains("never reaches"));
        assert!(eval("range(2000)").unwrap_err().contains("1024"));
        assert!(eval("range()").unwrap_err().contains("1 to 3"));
    }

    #[test]
    fn file_reads_relative_to_the_working_directory_and_names_a_missing_one() {
        let error = eval(r#"file("no-such-file.csv")"#).unwrap_err();
        assert!(error.contains("no-such-file.csv"), "{error}");
    }
}
