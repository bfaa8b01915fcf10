// Checks every constant in bpr_protocol::wire::{field, data_type, ttype} against the IDL text of thrift/*.thrift and the binary-protocol spec.

use std::collections::BTreeMap;
use std::path::Path;

use bpr_protocol::wire::{data_type, field, ttype};

/// One field of a struct or union: `id: [required|optional] type name`.
#[derive(Debug)]
struct Field {
    id: i16,
    ty: String,
}

#[derive(Default, Debug)]
struct Idl {
    /// "Struct.field" -> field (structs and unions)
    fields: BTreeMap<String, Field>,
    /// "Enum.MEMBER" -> value
    enums: BTreeMap<String, i32>,
    /// "Struct" -> "struct" | "union", "Enum" -> "enum"
    kinds: BTreeMap<String, String>,
}

fn strip_comments(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while !rest.is_empty() {
        if let Some(after) = rest.strip_prefix("/*") {
            let end = after.find("*/").expect("unterminated /* comment");
            rest = &after[end + 2..];
        } else if rest.starts_with("//") || rest.starts_with('#') {
            let end = rest.find('\n').unwrap_or(rest.len());
            rest = &rest[end..];
        } else {
            let c = rest.chars().next().unwrap();
            out.push(c);
            rest = &rest[c.len_utf8()..];
        }
    }
    out
}

/// Parses the declarations this project uses. Every line inside a block must
/// parse, so a construct the parser does not know fails the test instead of
/// being skipped.
fn parse(idl: &mut Idl, file: &str, text: &str) {
    let text = strip_comments(text);
    let mut rest = text.as_str();
    while let Some(open) = rest.find('{') {
        let head: Vec<&str> = rest[..open].split_whitespace().collect();
        let close = open + rest[open..].find('}').expect("unterminated block");
        let body = &rest[open + 1..close];
        rest = &rest[close + 1..];
        let (kind, name) = match head[..] {
            [.., kind, name] => (kind, name),
            _ => panic!("{file}: cannot read the block header {head:?}"),
        };
        assert!(
            idl.kinds
                .insert(name.to_string(), kind.to_string())
                .is_none(),
            "{file}: {name} declared twice"
        );
        // Fields may be separated by newlines, commas or semicolons; types
        // like map<i64, double> contain commas, so split on newlines first.
        for line in body.lines() {
            let line = line.trim().trim_end_matches([',', ';']).trim();
            if line.is_empty() {
                continue;
            }
            match kind {
                "enum" => {
                    let (member, value) = line.split_once('=').unwrap_or_else(|| {
                        panic!("{file}: enum {name}: no explicit value in {line:?}")
                    });
                    let value: i32 = value
                        .trim()
                        .parse()
                        .unwrap_or_else(|_| panic!("{file}: enum {name}: bad value in {line:?}"));
                    let key = format!("{name}.{}", member.trim());
                    assert!(
                        idl.enums.insert(key.clone(), value).is_none(),
                        "{file}: {key} twice"
                    );
                }
                "struct" | "union" => {
                    let (id, decl) = line
                        .split_once(':')
                        .unwrap_or_else(|| panic!("{file}: {name}: no field id in {line:?}"));
                    let id: i16 = id
                        .trim()
                        .parse()
                        .unwrap_or_else(|_| panic!("{file}: {name}: bad field id in {line:?}"));
                    let decl = decl.trim();
                    let decl = decl
                        .strip_prefix("required ")
                        .or_else(|| decl.strip_prefix("optional "))
                        .unwrap_or(decl)
                        .trim();
                    let (ty, field_name) = decl
                        .rsplit_once(char::is_whitespace)
                        .unwrap_or_else(|| panic!("{file}: {name}: no field name in {line:?}"));
                    let key = format!("{name}.{field_name}");
                    let ty = ty.split_whitespace().collect::<Vec<_>>().join(" ");
                    assert!(
                        idl.fields.insert(key.clone(), Field { id, ty }).is_none(),
                        "{file}: {key} twice"
                    );
                }
                other => panic!("{file}: unknown block kind {other:?}"),
            }
        }
    }
    // Nothing outside the blocks but namespace and include lines.
    for line in rest.lines().map(str::trim).filter(|l| !l.is_empty()) {
        assert!(
            line.starts_with("namespace ") || line.starts_with("include "),
            "{file}: unexpected line {line:?}"
        );
    }
}

fn load() -> Idl {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../thrift");
    let mut idl = Idl::default();
    for file in ["prediction_service.thrift", "data.thrift", "tensor.thrift"] {
        let text = std::fs::read_to_string(dir.join(file))
            .unwrap_or_else(|e| panic!("reading thrift/{file}: {e}"));
        // Namespace and include lines sit outside blocks but before them; the
        // block parser sees them as part of the next header, so drop them first.
        let text: String = text
            .lines()
            .filter(|l| {
                let l = l.trim_start();
                !(l.starts_with("namespace ") || l.starts_with("include "))
            })
            .map(|l| format!("{l}\n"))
            .collect();
        parse(&mut idl, file, &text);
    }
    idl
}

fn check_field(idl: &Idl, name: &str, constant: i16, ty: &str) {
    let f = idl
        .fields
        .get(name)
        .unwrap_or_else(|| panic!("{name} is not in thrift/*.thrift"));
    assert_eq!(
        f.id, constant,
        "{name}: IDL id {} but the constant is {constant}",
        f.id
    );
    assert_eq!(f.ty, ty, "{name}: IDL type");
}

#[test]
fn parser_sees_the_whole_idl() {
    // Guards against a parser that silently finds nothing.
    let idl = load();
    assert_eq!(
        idl.kinds.get("DataRecord").map(String::as_str),
        Some("struct")
    );
    assert_eq!(
        idl.kinds.get("GeneralTensor").map(String::as_str),
        Some("union")
    );
    assert_eq!(idl.kinds.get("DataType").map(String::as_str), Some("enum"));
    let record_fields = idl
        .fields
        .keys()
        .filter(|k| k.starts_with("DataRecord."))
        .count();
    assert_eq!(record_fields, 9);
    let tensor_arms = idl
        .fields
        .keys()
        .filter(|k| k.starts_with("GeneralTensor."))
        .count();
    assert_eq!(tensor_arms, 8);
    assert_eq!(idl.enums.len(), 8);
}

#[test]
fn field_ids_match_the_idl() {
    let idl = load();
    check_field(
        &idl,
        "BatchPredictionResponse.predictions",
        field::RESPONSE_PREDICTIONS,
        "list<data.DataRecord>",
    );
    check_field(
        &idl,
        "DataRecord.continuousFeatures",
        field::RECORD_CONTINUOUS_FEATURES,
        "map<i64, double>",
    );
    check_field(
        &idl,
        "DataRecord.tensors",
        field::RECORD_TENSORS,
        "map<i64, tensor.GeneralTensor>",
    );
    check_field(
        &idl,
        "GeneralTensor.rawTypedTensor",
        field::GENERAL_RAW_TYPED_TENSOR,
        "RawTypedTensor",
    );
    check_field(
        &idl,
        "GeneralTensor.stringTensor",
        field::GENERAL_STRING_TENSOR,
        "StringTensor",
    );
    check_field(
        &idl,
        "RawTypedTensor.dataType",
        field::RAW_DATA_TYPE,
        "DataType",
    );
    check_field(&idl, "RawTypedTensor.content", field::RAW_CONTENT, "binary");
    check_field(&idl, "RawTypedTensor.shape", field::RAW_SHAPE, "list<i64>");
    check_field(
        &idl,
        "StringTensor.strings",
        field::STRING_STRINGS,
        "list<string>",
    );
    check_field(&idl, "StringTensor.shape", field::STRING_SHAPE, "list<i64>");
}

#[test]
fn field_ids_are_unique_within_each_struct() {
    let idl = load();
    let mut seen: BTreeMap<(String, i16), String> = BTreeMap::new();
    for (name, f) in &idl.fields {
        let owner = name.split('.').next().unwrap().to_string();
        if let Some(other) = seen.insert((owner, f.id), name.clone()) {
            panic!("{name} and {other} share id {}", f.id);
        }
    }
}

#[test]
fn data_type_values_match_the_idl() {
    let idl = load();
    for (member, constant) in [
        ("FLOAT", data_type::FLOAT),
        ("DOUBLE", data_type::DOUBLE),
        ("INT32", data_type::INT32),
        ("INT64", data_type::INT64),
        ("UINT8", data_type::UINT8),
        ("BYTE", data_type::BYTE),
        ("BOOL", data_type::BOOL),
    ] {
        let key = format!("DataType.{member}");
        let value = idl
            .enums
            .get(&key)
            .unwrap_or_else(|| panic!("{key} is not in thrift/tensor.thrift"));
        assert_eq!(
            *value, constant,
            "{key}: IDL value {value} but the constant is {constant}"
        );
    }
}

#[test]
fn type_codes_match_the_binary_protocol_spec() {
    // Apache Thrift doc/specs/thrift-binary-protocol.md.
    assert_eq!(ttype::STOP, 0);
    assert_eq!(ttype::BOOL, 2);
    assert_eq!(ttype::BYTE, 3);
    assert_eq!(ttype::DOUBLE, 4);
    assert_eq!(ttype::I16, 6);
    assert_eq!(ttype::I32, 8);
    assert_eq!(ttype::I64, 10);
    assert_eq!(ttype::STRING, 11);
    assert_eq!(ttype::STRUCT, 12);
    assert_eq!(ttype::MAP, 13);
    assert_eq!(ttype::SET, 14);
    assert_eq!(ttype::LIST, 15);
}

#[test]
fn type_codes_match_the_thrift_crate() {
    // A second, independent source: Apache's Rust library.
    use thrift::protocol::TType;
    fn code(t: TType) -> u8 {
        let mut out = Vec::new();
        let mut p = thrift::protocol::TBinaryOutputProtocol::new(&mut out, true);
        thrift::protocol::TOutputProtocol::write_field_begin(
            &mut p,
            &thrift::protocol::TFieldIdentifier::new("f", t, 1),
        )
        .unwrap();
        out[0]
    }
    assert_eq!(ttype::BOOL, code(TType::Bool));
    assert_eq!(ttype::BYTE, code(TType::I08));
    assert_eq!(ttype::I16, code(TType::I16));
    assert_eq!(ttype::SET, code(TType::Set));
    assert_eq!(ttype::DOUBLE, code(TType::Double));
    assert_eq!(ttype::I32, code(TType::I32));
    assert_eq!(ttype::I64, code(TType::I64));
    assert_eq!(ttype::STRING, code(TType::String));
    assert_eq!(ttype::STRUCT, code(TType::Struct));
    assert_eq!(ttype::MAP, code(TType::Map));
    assert_eq!(ttype::LIST, code(TType::List));
}
