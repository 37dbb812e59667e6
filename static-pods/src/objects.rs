//! ConfigMaps and Secrets in the manifest directory: decoding, the apiserver's defaulting
//! (namespace `default`, Secret type `Opaque`, `stringData` merged into `data`) and its
//! validation (`ValidateConfigMap`, `ValidateSecret`).
//!
//! A Secret's values never reach an error message: decoder failures inside `data` and
//! `stringData` are reported by position only, base64 failures by key and byte offset, and
//! [`RedactedSecret`] prints keys without values.

use std::collections::BTreeMap;
use std::fmt;

use api::FieldError;
use api::defaults::DEFAULT_NAMESPACE;
use api::names::{DNS1123_SUBDOMAIN_MAX, NameError, dns1123_label, dns1123_subdomain};
use base64::Engine as _;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::Deserialize;

use crate::error::ManifestErrorKind;
use crate::manifest::{Format, Source};

/// Most bytes of values one ConfigMap or Secret may hold (the apiserver's `MaxSecretSize`,
/// which bounds ConfigMaps too).
pub const MAX_DATA_SIZE: usize = 1024 * 1024;

/// The default Secret type.
pub const SECRET_TYPE_OPAQUE: &str = "Opaque";

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawConfigMap {
    #[serde(default)]
    metadata: ObjectMeta,
    data: Option<BTreeMap<String, Option<String>>>,
    binary_data: Option<BTreeMap<String, Option<String>>>,
    immutable: Option<bool>,
}

/// A Secret without its values, decoded first so errors in these fields keep the
/// decoder's full message.
#[derive(Deserialize)]
struct SecretFields {
    #[serde(default)]
    metadata: ObjectMeta,
    #[serde(rename = "type")]
    type_: Option<String>,
    immutable: Option<bool>,
}

/// The values of a Secret, decoded apart: a failure here is reported without the decoder's
/// message, which may quote what it read.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SecretValues {
    data: Option<BTreeMap<String, Option<String>>>,
    string_data: Option<BTreeMap<String, Option<String>>>,
}

/// Decodes, defaults and validates a ConfigMap document.
pub(crate) fn load_config_map(src: &Source<'_>) -> Result<ConfigMap, ManifestErrorKind> {
    let raw: RawConfigMap = src.decode()?;
    let mut errs = Vec::new();
    let metadata = object_meta(raw.metadata, &mut errs);
    let data: Option<BTreeMap<String, String>> = raw.data.map(|d| {
        d.into_iter()
            .map(|(k, v)| (k, v.unwrap_or_default()))
            .collect()
    });
    let mut binary_data = raw.binary_data.as_ref().map(|_| BTreeMap::new());
    for (key, value) in raw.binary_data.into_iter().flatten() {
        match decode_base64(value.as_deref().unwrap_or_default()) {
            Ok(bytes) => {
                if let Some(b) = binary_data.as_mut() {
                    b.insert(key, ByteString(bytes));
                }
            }
            Err(why) => errs.push(FieldError::new(format!("binaryData[{key}]"), why)),
        }
    }

    let mut total = 0usize;
    for (key, value) in data.iter().flatten() {
        check_key("data", key, &mut errs);
        if binary_data.as_ref().is_some_and(|b| b.contains_key(key)) {
            errs.push(FieldError::new(
                format!("data[{key}]"),
                format!("invalid value {key:?}: duplicate of key present in binaryData"),
            ));
        }
        total = total.saturating_add(value.len());
    }
    for (key, value) in binary_data.iter().flatten() {
        check_key("binaryData", key, &mut errs);
        total = total.saturating_add(value.0.len());
    }
    check_size("data", total, &mut errs);

    if !errs.is_empty() {
        return Err(ManifestErrorKind::Invalid(errs));
    }
    Ok(ConfigMap {
        metadata,
        data,
        binary_data,
        immutable: raw.immutable,
    })
}

/// Decodes, defaults and validates a Secret document.
pub(crate) fn load_secret(src: &Source<'_>) -> Result<Secret, ManifestErrorKind> {
    let fields: SecretFields = src.decode()?;
    let values: SecretValues = src.decode_raw().map_err(|failure| {
        let at = failure
            .location
            .map(|(line, column)| format!(" at line {line}, column {column}"))
            .unwrap_or_default();
        let message = format!(
            "a Secret's data and stringData must map keys to strings{at} \
             (the decoder's message is withheld: it may quote secret values)"
        );
        match src.format() {
            Format::Json => ManifestErrorKind::Json(message),
            Format::Yaml => ManifestErrorKind::Yaml(message),
        }
    })?;

    let mut errs = Vec::new();
    let metadata = object_meta(fields.metadata, &mut errs);
    let mut data = values.data.as_ref().map(|_| BTreeMap::new());
    for (key, value) in values.data.into_iter().flatten() {
        match decode_base64(value.as_deref().unwrap_or_default()) {
            Ok(bytes) => {
                if let Some(d) = data.as_mut() {
                    d.insert(key, ByteString(bytes));
                }
            }
            Err(why) => errs.push(FieldError::new(format!("data[{key}]"), why)),
        }
    }
    // As the apiserver converts a v1 Secret: stringData entries overwrite data's, and
    // stringData itself is never stored.
    for (key, value) in values.string_data.into_iter().flatten() {
        data.get_or_insert_with(BTreeMap::new)
            .insert(key, ByteString(value.unwrap_or_default().into_bytes()));
    }

    let mut total = 0usize;
    for (key, value) in data.iter().flatten() {
        check_key("data", key, &mut errs);
        total = total.saturating_add(value.0.len());
    }
    check_size("data", total, &mut errs);

    let type_ = match fields.type_ {
        Some(t) if !t.is_empty() => t,
        _ => SECRET_TYPE_OPAQUE.to_string(),
    };
    check_secret_type(&type_, &metadata, data.as_ref(), &mut errs);

    if !errs.is_empty() {
        return Err(ManifestErrorKind::Invalid(errs));
    }
    Ok(Secret {
        metadata,
        data,
        string_data: None,
        type_: Some(type_),
        immutable: fields.immutable,
    })
}

/// Name required and a DNS subdomain; namespace defaulted, then a DNS label.
fn object_meta(mut meta: ObjectMeta, errs: &mut Vec<FieldError>) -> ObjectMeta {
    match meta.name.as_deref() {
        None | Some("") => errs.push(FieldError::new("metadata.name", "required value")),
        Some(name) => invalid_if(
            errs,
            "metadata.name",
            name,
            dns1123_subdomain(name, DNS1123_SUBDOMAIN_MAX),
        ),
    }
    let namespace = meta
        .namespace
        .get_or_insert_with(|| DEFAULT_NAMESPACE.to_string());
    if namespace.is_empty() {
        *namespace = DEFAULT_NAMESPACE.to_string();
    }
    invalid_if(
        errs,
        "metadata.namespace",
        namespace,
        dns1123_label(namespace),
    );
    meta
}

fn invalid_if(errs: &mut Vec<FieldError>, field: &str, value: &str, result: Result<(), NameError>) {
    if let Err(why) = result {
        errs.push(FieldError::new(
            field,
            format!("invalid value {value:?}: {why}"),
        ));
    }
}

/// Why `key` cannot name an entry of a ConfigMap or Secret (the apiserver's `IsConfigMapKey`);
/// empty when it can. Keys become file names in volumes, hence no `.`, `..` or `..x`.
pub fn config_map_key_errors(key: &str) -> Vec<String> {
    let mut why = Vec::new();
    if key.len() > DNS1123_SUBDOMAIN_MAX {
        why.push(format!(
            "must be no more than {DNS1123_SUBDOMAIN_MAX} characters"
        ));
    }
    let charset_ok = !key.is_empty()
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'));
    if !charset_ok {
        why.push(
            "a valid config key must consist of alphanumeric characters, '-', '_' or '.' \
             (e.g. 'key.name', or 'KEY_NAME', or 'key-name', regex used for validation is \
             '[-._a-zA-Z0-9]+')"
                .to_string(),
        );
    }
    if key == "." {
        why.push("must not be '.'".to_string());
    } else if key == ".." {
        why.push("must not be '..'".to_string());
    } else if key.starts_with("..") {
        why.push("must not start with '..'".to_string());
    }
    why
}

fn check_key(map: &str, key: &str, errs: &mut Vec<FieldError>) {
    for why in config_map_key_errors(key) {
        errs.push(FieldError::new(
            format!("{map}[{key}]"),
            format!("invalid value {key:?}: {why}"),
        ));
    }
}

fn check_size(field: &str, total: usize, errs: &mut Vec<FieldError>) {
    if total > MAX_DATA_SIZE {
        errs.push(FieldError::new(
            field,
            format!(
                "too long: may not be more than {MAX_DATA_SIZE} bytes (values total {total} bytes)"
            ),
        ));
    }
}

/// The keys each well-known Secret type requires, checked as the apiserver does.
fn check_secret_type(
    type_: &str,
    meta: &ObjectMeta,
    data: Option<&BTreeMap<String, ByteString>>,
    errs: &mut Vec<FieldError>,
) {
    let get = |key: &str| data.and_then(|d| d.get(key));
    let required = |errs: &mut Vec<FieldError>, key: &str| {
        errs.push(FieldError::new(format!("data[{key}]"), "required value"));
    };
    match type_ {
        "kubernetes.io/service-account-token" => {
            let name = meta
                .annotations
                .as_ref()
                .and_then(|a| a.get("kubernetes.io/service-account.name"));
            if name.is_none_or(|n| n.is_empty()) {
                errs.push(FieldError::new(
                    "metadata.annotations[kubernetes.io/service-account.name]",
                    "required value",
                ));
            }
        }
        "kubernetes.io/dockercfg" | "kubernetes.io/dockerconfigjson" => {
            let key = if type_ == "kubernetes.io/dockercfg" {
                ".dockercfg"
            } else {
                ".dockerconfigjson"
            };
            match get(key) {
                None => required(errs, key),
                Some(bytes) => {
                    if let Err(e) = serde_json::from_slice::<
                        serde_json::Map<String, serde_json::Value>,
                    >(&bytes.0)
                    {
                        // Position only: serde_json's messages can quote the content.
                        errs.push(FieldError::new(
                            format!("data[{key}]"),
                            format!(
                                "invalid value <secret contents redacted>: not a JSON object \
                                 (error at line {}, column {})",
                                e.line(),
                                e.column()
                            ),
                        ));
                    }
                }
            }
        }
        "kubernetes.io/basic-auth" if get("username").is_none() && get("password").is_none() => {
            required(errs, "username");
            required(errs, "password");
        }
        "kubernetes.io/ssh-auth" if get("ssh-privatekey").is_none_or(|v| v.0.is_empty()) => {
            required(errs, "ssh-privatekey");
        }
        "kubernetes.io/tls" => {
            for key in ["tls.crt", "tls.key"] {
                if get(key).is_none() {
                    required(errs, key);
                }
            }
        }
        _ => {}
    }
}

/// Standard base64 with padding, line breaks ignored, as Go's JSON decoding of `[]byte`
/// reads it. The error names the offset only, never the offending character.
fn decode_base64(value: &str) -> Result<Vec<u8>, String> {
    const ENGINE: base64::engine::GeneralPurpose = base64::engine::GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        base64::engine::GeneralPurposeConfig::new()
            .with_decode_allow_trailing_bits(true)
            .with_decode_padding_mode(base64::engine::DecodePaddingMode::RequireCanonical),
    );
    let stripped;
    let input = if value.contains(['\r', '\n']) {
        stripped = value.replace(['\r', '\n'], "");
        stripped.as_str()
    } else {
        value
    };
    ENGINE.decode(input).map_err(|e| {
        let at = match e {
            base64::DecodeError::InvalidByte(offset, _)
            | base64::DecodeError::InvalidLastSymbol(offset, _) => Some(offset),
            base64::DecodeError::InvalidLength(len) => Some(len),
            base64::DecodeError::InvalidPadding => None,
        };
        match at {
            Some(offset) => format!("illegal base64 data at input byte {offset}"),
            None => "illegal base64 data: bad padding".to_string(),
        }
    })
}

/// A Secret for `Debug` output: metadata names and labels, type, and data keys, no values
/// (nor annotation values, which tools fill with whole applied objects).
pub struct RedactedSecret<'a>(pub &'a Secret);

impl fmt::Debug for RedactedSecret<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.0;
        let meta = &s.metadata;
        let keys = |m: Option<Vec<&String>>| m.map(|k| Keys(k.into_iter().cloned().collect()));
        f.debug_struct("Secret")
            .field("namespace", &meta.namespace)
            .field("name", &meta.name)
            .field("labels", &meta.labels)
            .field(
                "annotation_keys",
                &meta
                    .annotations
                    .as_ref()
                    .map(|a| a.keys().collect::<Vec<_>>()),
            )
            .field("type", &s.type_)
            .field("immutable", &s.immutable)
            .field("data", &keys(s.data.as_ref().map(|d| d.keys().collect())))
            .field(
                "string_data",
                &keys(s.string_data.as_ref().map(|d| d.keys().collect())),
            )
            .finish()
    }
}

/// Map keys with every value shown as `<redacted>`.
struct Keys(Vec<String>);

impl fmt::Debug for Keys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(self.0.iter().map(|k| (k, Redacted)))
            .finish()
    }
}

struct Redacted;

impl fmt::Debug for Redacted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}
