//! The CLI's configuration: the `*.tf` and `*.hcl` files of one directory,
//! with the same `resource "atrium_*"` blocks as the provider's, an
//! `atrium { … }` block with the provider block's settings (and `owner`),
//! `variable` and `locals` blocks, and Terraform's expressions: references,
//! templates, `for` expressions, `for_each`, `count` and functions.
//!
//! Terraform's own blocks (`terraform`, `provider`, `output`) are skipped, so
//! that one directory can hold a configuration for both front doors (the
//! `atrium` block lives in a `.hcl` file, which Terraform does not read).
//!
//! Values computed at apply (a tenant's `status`, an instance's
//! `internal_url`) cannot be referenced: the CLI plans with known values
//! only. Each resource's `id` can, as it is its natural key.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;
use std::path::Path;

use hcl::edit::Span as _;
use hcl::edit::structure::{Block, Body, Structure};
use hcl::eval::{Context, Evaluate};
use hcl::{Map, Value};

use super::diagnostic::{Diagnostic, Position};
use super::functions;
use crate::model::ownership::ObjectKind;

/// One configuration file's text, to turn byte offsets into lines.
struct Source {
    name: String,
    text: String,
    line_starts: Vec<usize>,
}

impl Source {
    fn new(name: String, text: String) -> Self {
        let line_starts =
            std::iter::once(0).chain(text.match_indices('\n').map(|(index, _)| index + 1)).collect::<Vec<_>>();
        Self { name, text, line_starts }
    }

    fn line_of(&self, offset: usize) -> usize {
        self.line_starts.partition_point(|start| *start <= offset)
    }

    fn position(&self, span: Option<Range<usize>>, block: &str) -> Option<Position> {
        let line = self.line_of(span?.start);
        let start = self.line_starts[line - 1];
        let end = self.text[start..].find('\n').map_or(self.text.len(), |length| start + length);
        Some(Position {
            file: self.name.clone(),
            line,
            block: block.to_owned(),
            source: self.text[start..end].to_owned(),
        })
    }
}

/// A resource instance as declared: its address, its attributes' values
/// (JSON, as the provider receives them), and where each was written.
#[derive(Debug, Clone)]
pub struct Declared {
    /// `atrium_tenant.acme`, `atrium_tenant.customers["acme"]`, `atrium_tenant.extra[0]`.
    pub address: String,
    pub kind: ObjectKind,
    pub values: serde_json::Map<String, serde_json::Value>,
    pub position: Option<Position>,
    /// The line of each attribute written in the block.
    pub attributes: BTreeMap<String, Position>,
}

impl Declared {
    /// Where an attribute (or the block, when it was not written) is.
    pub fn position_of(&self, attribute: &str) -> Option<Position> {
        self.attributes.get(attribute).cloned().or_else(|| self.position.clone())
    }
}

/// The whole configuration, evaluated.
#[derive(Debug, Clone)]
pub struct Configuration {
    /// The `atrium` block's attributes, as the provider block's document.
    pub settings: serde_json::Value,
    pub settings_position: Option<Position>,
    /// Every resource instance, in the order written (dependencies first).
    pub resources: Vec<Declared>,
    /// The variables declared `sensitive = true`: their values never enter a saved plan.
    pub sensitive_variables: BTreeSet<String>,
}

/// Variable values given on the command line (`-var name=value`).
pub type Variables = Vec<(String, String)>;

struct ResourceBlock<'s> {
    source: &'s Source,
    kind: ObjectKind,
    type_name: String,
    name: String,
    block: Block,
    /// The resource blocks this one refers to, `(type, name)`.
    refers_to: BTreeSet<(String, String)>,
}

impl ResourceBlock<'_> {
    fn title(&self) -> String {
        format!("resource {:?} {:?}", self.type_name, self.name)
    }
}

fn label(block: &Block, index: usize) -> Option<&str> {
    block.labels.get(index).map(|label| label.as_str())
}

/// Reads and evaluates the configuration in `directory`.
pub fn load(directory: &Path, variables: &Variables) -> Result<Configuration, Diagnostic> {
    let mut names = Vec::new();
    let entries = std::fs::read_dir(directory).map_err(|error| {
        Diagnostic::new("Cannot read the configuration directory", format!("{}: {error}", directory.display()), None)
    })?;
    for entry in entries {
        let path = entry
            .map_err(|error| Diagnostic::new("Cannot read the configuration directory", error.to_string(), None))?
            .path();
        let is_config = path.extension().is_some_and(|extension| extension == "tf" || extension == "hcl");
        if is_config && path.is_file() {
            names.push(path);
        }
    }
    names.sort();
    let mut sources = Vec::new();
    for path in names {
        let text = std::fs::read_to_string(&path).map_err(|error| {
            Diagnostic::new("Cannot read a configuration file", format!("{}: {error}", path.display()), None)
        })?;
        let name = path.file_name().map(|name| name.to_string_lossy().into_owned()).unwrap_or_default();
        sources.push(Source::new(name, text));
    }
    if sources.is_empty() {
        return Err(Diagnostic::new(
            "No configuration files",
            format!(
                "{} has no .tf or .hcl files; write an atrium block and resource blocks there, or pass -chdir=DIR",
                directory.display()
            ),
            None,
        ));
    }
    evaluate(&sources, variables)
}

/// Evaluates configuration texts given as `(file name, text)` pairs.
pub fn load_texts(files: &[(&str, &str)], variables: &Variables) -> Result<Configuration, Diagnostic> {
    let sources: Vec<Source> =
        files.iter().map(|(name, text)| Source::new((*name).to_owned(), (*text).to_owned())).collect();
    evaluate(&sources, variables)
}

struct Parsed<'s> {
    atrium: Option<(&'s Source, Block)>,
    variables: Vec<(&'s Source, Block)>,
    locals: Vec<(&'s Source, hcl::edit::structure::Attribute)>,
    resources: Vec<ResourceBlock<'s>>,
}

fn parse(sources: &[Source]) -> Result<Parsed<'_>, Diagnostic> {
    let mut parsed = Parsed { atrium: None, variables: Vec::new(), locals: Vec::new(), resources: Vec::new() };
    for source in sources {
        let body: Body = hcl::edit::parser::parse_body(&source.text).map_err(|error| {
            let location = error.location();
            Diagnostic::new(
                "Invalid HCL",
                format!("{} line {}, column {}: {}", source.name, location.line(), location.column(), error.message()),
                None,
            )
        })?;
        for structure in body.into_iter() {
            let block = match structure {
                Structure::Block(block) => block,
                Structure::Attribute(attribute) => {
                    return Err(Diagnostic::new(
                        "Unexpected attribute",
                        format!(
                            "{} is outside any block; attributes belong in a resource, atrium, locals or variable block",
                            attribute.key.as_str()
                        ),
                        source.position(attribute.span(), "the file"),
                    ));
                }
            };
            match block.ident.as_str() {
                "atrium" => {
                    if let Some((first, earlier)) = &parsed.atrium {
                        let at = first
                            .position(earlier.span(), "atrium")
                            .map(|p| format!(" (the first is in {} line {})", p.file, p.line))
                            .unwrap_or_default();
                        return Err(Diagnostic::new(
                            "Duplicate atrium block",
                            format!("a configuration has one atrium block{at}"),
                            source.position(block.span(), "atrium"),
                        ));
                    }
                    parsed.atrium = Some((source, block));
                }
                "variable" => parsed.variables.push((source, block)),
                "locals" => {
                    for structure in block.body.into_iter() {
                        match structure {
                            Structure::Attribute(attribute) => parsed.locals.push((source, attribute)),
                            Structure::Block(inner) => {
                                return Err(Diagnostic::new(
                                    "Unexpected block",
                                    "locals hold attributes only (name = expression)",
                                    source.position(inner.span(), "locals"),
                                ));
                            }
                        }
                    }
                }
                "resource" => parsed.resources.push(resource_block(source, block)?),
                // Terraform's own blocks: the provider block's settings are the atrium block's here.
                "terraform" | "provider" | "output" => {}
                other => {
                    return Err(Diagnostic::new(
                        format!("Unsupported block type {other:?}"),
                        "the atrium CLI reads atrium, resource, variable and locals blocks (and skips terraform, provider and output blocks)",
                        source.position(block.span(), other),
                    ));
                }
            }
        }
    }
    Ok(parsed)
}

fn resource_block(source: &Source, block: Block) -> Result<ResourceBlock<'_>, Diagnostic> {
    let (Some(type_name), Some(name), None) = (label(&block, 0), label(&block, 1), label(&block, 2)) else {
        return Err(Diagnostic::new(
            "Invalid resource block",
            "a resource block has two labels: resource \"atrium_tenant\" \"acme\" { … }",
            source.position(block.span(), "resource"),
        ));
    };
    let Some(kind) = ObjectKind::from_type_name(type_name) else {
        return Err(Diagnostic::new(
            format!("Unknown resource type {type_name:?}"),
            "the atrium CLI manages atrium_tenant, atrium_app_instance, atrium_domain and atrium_support_plan",
            source.position(block.span(), &format!("resource {type_name:?} {name:?}")),
        ));
    };
    let text = block.span().map(|span| &source.text[span]).unwrap_or_default();
    Ok(ResourceBlock {
        source,
        kind,
        type_name: type_name.to_owned(),
        name: name.to_owned(),
        refers_to: references(text),
        block,
    })
}

/// The resources a block's text names (`atrium_tenant.acme`), in
/// expressions and templates alike: what must be evaluated before it.
fn references(text: &str) -> BTreeSet<(String, String)> {
    let mut found = BTreeSet::new();
    let identifier = |rest: &str| -> String {
        rest.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '-').collect()
    };
    for (index, _) in text.match_indices("atrium_") {
        let before = text[..index].chars().next_back();
        if before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.' || c == '"') {
            continue;
        }
        let type_name = identifier(&text[index..]);
        let rest = &text[index + type_name.len()..];
        if let Some(rest) = rest.strip_prefix('.') {
            let name = identifier(rest);
            if !name.is_empty() && ObjectKind::from_type_name(&type_name).is_some() {
                found.insert((type_name, name));
            }
        }
    }
    found
}

/// Resource blocks in an order where each comes after those it refers to.
fn ordered<'a, 's>(blocks: &'a [ResourceBlock<'s>]) -> Result<Vec<&'a ResourceBlock<'s>>, Diagnostic> {
    let index: BTreeMap<(&str, &str), usize> =
        blocks.iter().enumerate().map(|(i, b)| ((b.type_name.as_str(), b.name.as_str()), i)).collect();
    // 0 unvisited, 1 in progress, 2 done.
    let mut state = vec![0u8; blocks.len()];
    let mut order = Vec::with_capacity(blocks.len());
    fn visit<'a, 's>(
        at: usize,
        blocks: &'a [ResourceBlock<'s>],
        index: &BTreeMap<(&str, &str), usize>,
        state: &mut [u8],
        order: &mut Vec<&'a ResourceBlock<'s>>,
    ) -> Result<(), Diagnostic> {
        match state[at] {
            2 => return Ok(()),
            1 => {
                let block = &blocks[at];
                return Err(Diagnostic::new(
                    "Cycle in resource references",
                    format!("{}.{} refers to itself through other resources", block.type_name, block.name),
                    block.source.position(block.block.span(), &block.title()),
                ));
            }
            _ => {}
        }
        state[at] = 1;
        for (type_name, name) in &blocks[at].refers_to {
            match index.get(&(type_name.as_str(), name.as_str())) {
                Some(next) => visit(*next, blocks, index, state, order)?,
                None => {
                    let block = &blocks[at];
                    return Err(Diagnostic::new(
                        "Reference to an undeclared resource",
                        format!("{type_name}.{name} is not declared in this configuration"),
                        block.source.position(block.block.span(), &block.title()),
                    ));
                }
            }
        }
        state[at] = 2;
        order.push(&blocks[at]);
        Ok(())
    }
    for at in 0..blocks.len() {
        visit(at, blocks, &index, &mut state, &mut order)?;
    }
    Ok(order)
}

fn eval_error(error: hcl::eval::Error, position: Option<Position>) -> Diagnostic {
    let hint = match error.kind() {
        hcl::eval::ErrorKind::NoSuchKey(_) => {
            "\n\nValues computed at apply (a tenant's status, an instance's internal_url) cannot be referenced \
             in the atrium CLI's configuration: it plans with known values only. A resource's id can be."
        }
        _ => "",
    };
    Diagnostic::new("Invalid expression", format!("{error}{hint}"), position)
}

fn to_json(value: &Value) -> serde_json::Value {
    serde_json::to_value(value).unwrap_or(serde_json::Value::Null)
}

fn evaluate(sources: &[Source], variables: &Variables) -> Result<Configuration, Diagnostic> {
    let parsed = parse(sources)?;
    let mut context = Context::new();
    functions::declare(&mut context);
    let (values, sensitive_variables) = variable_values(&parsed, variables, &context)?;
    context.declare_var("var", Value::Object(values));
    context.declare_var("path", Value::Object(Map::from_iter([("module".to_owned(), Value::from("."))])));
    let locals = local_values(&parsed, &mut context)?;
    context.declare_var("local", Value::Object(locals));

    let (settings, settings_position) = match &parsed.atrium {
        Some((source, block)) => {
            let (values, _) = block_values(source, block, "atrium", &context)?;
            (serde_json::Value::Object(values), source.position(block.span(), "atrium"))
        }
        None => (serde_json::Value::Null, None),
    };

    let mut resources = Vec::new();
    let mut by_type: BTreeMap<String, Map<String, Value>> = BTreeMap::new();
    let mut seen = BTreeSet::new();
    for block in ordered(&parsed.resources)? {
        if !seen.insert((block.type_name.as_str(), block.name.as_str())) {
            return Err(Diagnostic::new(
                "Duplicate resource",
                format!("{}.{} is declared twice; give each resource block its own name", block.type_name, block.name),
                block.source.position(block.block.span(), &block.title()),
            ));
        }
        let value = expand(block, &mut context, &mut resources)?;
        by_type.entry(block.type_name.clone()).or_default().insert(block.name.clone(), value);
        let all = by_type.get(&block.type_name).cloned().unwrap_or_default();
        context.declare_var(block.type_name.as_str(), Value::Object(all));
    }
    Ok(Configuration { settings, settings_position, resources, sensitive_variables })
}

/// The variables' values (`-var` values, else their defaults), and the
/// names of the sensitive ones.
fn variable_values(
    parsed: &Parsed<'_>,
    given: &Variables,
    context: &Context<'_>,
) -> Result<(Map<String, Value>, BTreeSet<String>), Diagnostic> {
    let mut values = Map::new();
    let mut sensitive = BTreeSet::new();
    let mut declared = BTreeSet::new();
    for (source, block) in &parsed.variables {
        let Some(name) = label(block, 0) else {
            return Err(Diagnostic::new(
                "Invalid variable block",
                "a variable block has one label: variable \"name\" { … }",
                source.position(block.span(), "variable"),
            ));
        };
        let title = format!("variable {name:?}");
        declared.insert(name.to_owned());
        let mut default = None;
        let mut string_typed = true;
        for structure in block.body.iter() {
            let Some(attribute) = structure.as_attribute() else { continue };
            match attribute.key.as_str() {
                "default" => {
                    let expression = hcl::Expression::from(attribute.value.clone());
                    default = Some(
                        expression
                            .evaluate(context)
                            .map_err(|error| eval_error(error, source.position(attribute.span(), &title)))?,
                    );
                }
                "sensitive" => {
                    if matches!(hcl::Expression::from(attribute.value.clone()), hcl::Expression::Bool(true)) {
                        sensitive.insert(name.to_owned());
                    }
                }
                "type" => {
                    string_typed = matches!(hcl::Expression::from(attribute.value.clone()),
                        hcl::Expression::Variable(ref v) if v.as_str() == "string");
                }
                _ => {}
            }
        }
        let given = given.iter().rev().find(|(given, _)| given == name).map(|(_, value)| value);
        let value = match (given, default) {
            (Some(raw), _) if string_typed => Value::from(raw.as_str()),
            (Some(raw), _) => {
                let expression: hcl::Expression = raw.parse().map_err(|error: hcl::Error| {
                    Diagnostic::new(format!("Invalid value for variable {name:?}"), error.to_string(), None)
                })?;
                expression.evaluate(context).map_err(|error| eval_error(error, None))?
            }
            (None, Some(default)) => default,
            (None, None) => {
                return Err(Diagnostic::new(
                    format!("No value for required variable {name:?}"),
                    format!("pass -var {name}=VALUE, or give the variable a default"),
                    source.position(block.span(), &title),
                ));
            }
        };
        values.insert(name.to_owned(), value);
    }
    if let Some((name, _)) = given.iter().find(|(name, _)| !declared.contains(name)) {
        return Err(Diagnostic::new(
            format!("Value for undeclared variable {name:?}"),
            format!("-var {name}=… names no variable; declare it: variable \"{name}\" {{}}"),
            None,
        ));
    }
    Ok((values, sensitive))
}

/// The locals, each evaluated once the locals it uses are.
fn local_values(parsed: &Parsed<'_>, context: &mut Context<'_>) -> Result<Map<String, Value>, Diagnostic> {
    let mut values = Map::new();
    let mut pending: Vec<&(&Source, hcl::edit::structure::Attribute)> = parsed.locals.iter().collect();
    while !pending.is_empty() {
        context.declare_var("local", Value::Object(values.clone()));
        let mut waiting = Vec::new();
        let mut first_error = None;
        for local in pending.iter().copied() {
            let (source, attribute) = local;
            let expression = hcl::Expression::from(attribute.value.clone());
            match expression.evaluate(context) {
                Ok(value) => {
                    values.insert(attribute.key.as_str().to_owned(), value);
                }
                Err(error) => {
                    first_error.get_or_insert_with(|| eval_error(error, source.position(attribute.span(), "locals")));
                    waiting.push(local);
                }
            }
        }
        if waiting.len() == pending.len() {
            return Err(first_error.unwrap_or_else(|| Diagnostic::new("Invalid locals", "", None)));
        }
        pending = waiting;
    }
    Ok(values)
}

/// The instances of one resource block (`count`, `for_each`, or one), each
/// added to `resources`; answers the block's value for references.
fn expand(
    block: &ResourceBlock<'_>,
    context: &mut Context<'_>,
    resources: &mut Vec<Declared>,
) -> Result<Value, Diagnostic> {
    let title = block.title();
    let meta = |key: &str| block.block.body.iter().filter_map(Structure::as_attribute).find(|a| a.key.as_str() == key);
    let evaluate_meta = |attribute: &hcl::edit::structure::Attribute, context: &Context<'_>| {
        hcl::Expression::from(attribute.value.clone())
            .evaluate(context)
            .map_err(|error| eval_error(error, block.source.position(attribute.span(), &title)))
    };
    let base = format!("{}.{}", block.type_name, block.name);
    match (meta("for_each"), meta("count")) {
        (Some(_), Some(attribute)) => Err(Diagnostic::new(
            "Invalid combination of count and for_each",
            "a resource has count or for_each, not both",
            block.source.position(attribute.span(), &title),
        )),
        (Some(attribute), None) => {
            let position = block.source.position(attribute.span(), &title);
            let items: Vec<(String, Value)> = match evaluate_meta(attribute, context)? {
                Value::Object(map) => map.into_iter().collect(),
                Value::Array(items) => items
                    .into_iter()
                    .map(|item| match item {
                        Value::String(key) => Ok((key.clone(), Value::String(key))),
                        other => Err(Diagnostic::new(
                            "Invalid for_each argument",
                            format!(
                                "for_each over a set takes strings, not {other}; use a map to give each its own value"
                            ),
                            position.clone(),
                        )),
                    })
                    .collect::<Result<_, _>>()?,
                other => {
                    return Err(Diagnostic::new(
                        "Invalid for_each argument",
                        format!("for_each takes a map or a set of strings, not {other}"),
                        position,
                    ));
                }
            };
            let mut all = Map::new();
            for (key, value) in items {
                let each = Map::from_iter([("key".to_owned(), Value::from(key.as_str())), ("value".to_owned(), value)]);
                context.declare_var("each", Value::Object(each));
                let address = format!("{base}[{key:?}]");
                all.insert(key, instance(block, address, context, resources)?);
            }
            Ok(Value::Object(all))
        }
        (None, Some(attribute)) => {
            let value = evaluate_meta(attribute, context)?;
            let count = value.as_u64().filter(|count| *count <= 100_000).ok_or_else(|| {
                Diagnostic::new(
                    "Invalid count argument",
                    format!("count takes a whole number from 0 to 100000, not {value}"),
                    block.source.position(attribute.span(), &title),
                )
            })?;
            let mut all = Vec::new();
            for index in 0..count {
                context.declare_var("count", Value::Object(Map::from_iter([("index".to_owned(), Value::from(index))])));
                all.push(instance(block, format!("{base}[{index}]"), context, resources)?);
            }
            Ok(Value::Array(all))
        }
        (None, None) => instance(block, base, context, resources),
    }
}

/// Meta-arguments: what a resource block says about itself, not the object.
const META_ARGUMENTS: &[&str] = &["count", "for_each", "depends_on", "provider"];

/// One resource instance: its attributes evaluated, added to `resources`;
/// answers its value for references (its attributes and `id`).
fn instance(
    block: &ResourceBlock<'_>,
    address: String,
    context: &Context<'_>,
    resources: &mut Vec<Declared>,
) -> Result<Value, Diagnostic> {
    let title = block.title();
    let (values, attributes) = block_values(block.source, &block.block, &title, context)?;
    let mut reference = hcl::to_value(&values).unwrap_or(Value::Null);
    if let (Value::Object(object), Some(id)) = (&mut reference, block.kind.natural_key(&values)) {
        object.insert("id".to_owned(), Value::from(id));
    }
    resources.push(Declared {
        address,
        kind: block.kind,
        values,
        position: block.source.position(block.block.span(), &title),
        attributes,
    });
    Ok(reference)
}

type BlockValues = (serde_json::Map<String, serde_json::Value>, BTreeMap<String, Position>);

/// A block's attributes, evaluated (meta-arguments left out), and where each is.
fn block_values(source: &Source, block: &Block, title: &str, context: &Context<'_>) -> Result<BlockValues, Diagnostic> {
    let mut values = serde_json::Map::new();
    let mut positions = BTreeMap::new();
    for structure in block.body.iter() {
        match structure {
            Structure::Attribute(attribute) => {
                let key = attribute.key.as_str();
                let position = source.position(attribute.span(), title);
                if META_ARGUMENTS.contains(&key) && block.ident.as_str() == "resource" {
                    continue;
                }
                let value = hcl::Expression::from(attribute.value.clone())
                    .evaluate(context)
                    .map_err(|error| eval_error(error, position.clone()))?;
                values.insert(key.to_owned(), to_json(&value));
                if let Some(position) = position {
                    positions.insert(key.to_owned(), position);
                }
            }
            Structure::Block(inner) => {
                let name = inner.ident.as_str();
                let detail = if name == "lifecycle" {
                    "lifecycle blocks are Terraform's; the atrium CLI does not support them yet".to_owned()
                } else {
                    format!("{name} is an attribute here, as in the provider: write {name} = {{ … }}")
                };
                return Err(Diagnostic::new(
                    format!("Unexpected block {name:?}"),
                    detail,
                    source.position(inner.span(), title),
                ));
            }
        }
    }
    Ok((values, positions))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(files: &[(&str, &str)], variables: &[(&str, &str)]) -> Result<Configuration, Diagnostic> {
        let variables = variables.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        load_texts(files, &variables)
    }

    fn addresses(configuration: &Configuration) -> Vec<&str> {
        configuration.resources.iter().map(|r| r.address.as_str()).collect()
    }

    #[test]
    fn for_each_over_a_csv_declares_one_resource_per_row_with_references_and_templates() {
        let main = r#"
variable "csv" {
  type = string
}

locals {
  customers = { for c in csvdecode(var.csv) : lower(c.name) => c }
  suffix    = "-${local.kind}"
  kind      = "erp"
}

resource "atrium_app_instance" "erp" {
  for_each  = local.customers
  tenant_id = atrium_tenant.customer[each.key].id
  name      = "erp${local.suffix}"
  app       = "hello"
  target    = "local"
}

resource "atrium_tenant" "customer" {
  for_each     = local.customers
  name         = each.key
  display_name = format("%s (%s)", each.value.name, each.value.tier)
  tier         = each.value.tier
  manager      = { email = "boss@${each.key}.example", name = "Boss" }
}
"#;
        let configuration = load(
            &[("main.tf", main), ("atrium.hcl", "atrium {\n  owner = \"partner\"\n}\n")],
            &[("csv", "name,tier\nAcme,business\nBeta,starter\n")],
        )
        .unwrap();
        assert_eq!(
            addresses(&configuration),
            [
                "atrium_tenant.customer[\"acme\"]",
                "atrium_tenant.customer[\"beta\"]",
                "atrium_app_instance.erp[\"acme\"]",
                "atrium_app_instance.erp[\"beta\"]"
            ]
        );
        let beta = &configuration.resources[1];
        assert_eq!(beta.values["display_name"], "Beta (starter)");
        assert_eq!(beta.values["manager"]["email"], "boss@beta.example");
        assert_eq!(beta.position_of("tier").unwrap().line, 24);
        let erp = &configuration.resources[3];
        assert_eq!(erp.values["tenant_id"], "beta");
        assert_eq!(erp.values["name"], "erp-erp");
        assert_eq!(configuration.settings["owner"], "partner");
    }

    #[test]
    fn count_and_plain_variables() {
        let main = r#"
variable "how_many" {
  type = number
}
resource "atrium_tenant" "t" {
  count = var.how_many
  name  = "t${count.index}"
}
"#;
        let configuration = load(&[("main.tf", main)], &[("how_many", "2")]).unwrap();
        assert_eq!(addresses(&configuration), ["atrium_tenant.t[0]", "atrium_tenant.t[1]"]);
        assert_eq!(configuration.resources[1].values["name"], "t1");
        assert!(!configuration.resources[0].values.contains_key("count"));
    }

    #[test]
    fn errors_name_the_file_line_and_block() {
        let main = "resource \"atrium_tenant\" \"acme\" {\n  name = \"acme\"\n  tier = var.nope\n}\n";
        let error = load(&[("main.tf", main)], &[]).unwrap_err();
        let position = error.position.clone().unwrap();
        assert_eq!((position.file.as_str(), position.line), ("main.tf", 3));
        let text = error.to_string();
        assert!(text.contains("on main.tf line 3, in resource \"atrium_tenant\" \"acme\":"), "{text}");
        assert!(text.contains("   3:   tier = var.nope"), "{text}");

        let computed = "resource \"atrium_tenant\" \"a\" {\n  name = \"a\"\n}\nresource \"atrium_tenant\" \"b\" {\n  name = atrium_tenant.a.status\n}\n";
        let error = load(&[("main.tf", computed)], &[]).unwrap_err();
        assert!(error.detail.contains("known values only"), "{error}");
        assert_eq!(error.position.unwrap().line, 5);
    }

    #[test]
    fn configuration_mistakes_are_refused_with_what_would_be_valid() {
        let cases = [
            ("resource \"atrium_tenent\" \"a\" {}\n", "Unknown resource type"),
            ("resource \"atrium_tenant\" \"a\" {\n  name = atrium_tenant.b.id\n}\n", "undeclared resource"),
            (
                "resource \"atrium_tenant\" \"a\" {\n  name = atrium_tenant.b.id\n}\nresource \"atrium_tenant\" \"b\" {\n  name = atrium_tenant.a.id\n}\n",
                "Cycle",
            ),
            ("resource \"atrium_tenant\" \"a\" {\n  manager {\n  }\n}\n", "Unexpected block"),
            ("data \"x\" \"y\" {}\n", "Unsupported block type"),
            ("resource \"atrium_tenant\" \"a\" {\n  count = -1\n}\n", "Invalid count"),
            ("resource \"atrium_tenant\" \"a\" {\n  for_each = [1]\n}\n", "Invalid for_each"),
            ("resource \"atrium_tenant\" \"a\" {\n", "Invalid HCL"),
            ("variable \"v\" {}\n", "No value for required variable"),
        ];
        for (text, expected) in cases {
            let error = load(&[("main.tf", text)], &[]).unwrap_err();
            assert!(error.summary.contains(expected), "{text}: {error}");
        }
        let error = load(&[("main.tf", "")], &[("nope", "1")]).unwrap_err();
        assert!(error.summary.contains("undeclared variable"), "{error}");
    }

    #[test]
    fn references_are_found_in_expressions_and_templates() {
        let found =
            references("x = atrium_tenant.a.id\ny = \"${atrium_app_instance.b[\"k\"].id}\"\nz = my_atrium_tenant.c");
        let found: Vec<(&str, &str)> = found.iter().map(|(t, n)| (t.as_str(), n.as_str())).collect();
        assert_eq!(found, [("atrium_app_instance", "b"), ("atrium_tenant", "a")]);
    }
}
