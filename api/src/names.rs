//! The name formats the API checks: RFC 1123 labels and subdomains, IANA service names
//! (port names) and environment variable names.

/// Longest RFC 1123 label (namespaces, container and volume names).
pub const DNS1123_LABEL_MAX: usize = 63;
/// Longest RFC 1123 subdomain (pod names).
pub const DNS1123_SUBDOMAIN_MAX: usize = 253;
const IANA_SVC_NAME_MAX: usize = 15;

/// Why a name is not of the required format; the texts are the apiserver's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("must be no more than {0} characters")]
    TooLong(usize),
    #[error(
        "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', \
         and must start and end with an alphanumeric character"
    )]
    NotLabel,
    #[error(
        "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' \
         or '.', and must start and end with an alphanumeric character"
    )]
    NotSubdomain,
    #[error("must contain only lowercase alphanumeric characters or '-'")]
    ServiceNameCharacters,
    #[error("must contain at least one letter")]
    ServiceNameNoLetter,
    #[error("must not contain consecutive hyphens")]
    ServiceNameConsecutiveHyphens,
    #[error("must not begin or end with a hyphen")]
    ServiceNameHyphenAtEnd,
    #[error(
        "a valid environment variable name must consist only of printable ASCII characters \
         other than '='"
    )]
    EnvVarName,
}

/// RFC 1123 label: lowercase alphanumerics and '-', alphanumeric at both ends, at most 63.
pub fn dns1123_label(s: &str) -> Result<(), NameError> {
    if s.len() > DNS1123_LABEL_MAX {
        return Err(NameError::TooLong(DNS1123_LABEL_MAX));
    }
    if !is_label(s) {
        return Err(NameError::NotLabel);
    }
    Ok(())
}

/// RFC 1123 subdomain: dot-separated labels, at most `max` characters overall.
pub fn dns1123_subdomain(s: &str, max: usize) -> Result<(), NameError> {
    if s.len() > max {
        return Err(NameError::TooLong(max));
    }
    if !s.split('.').all(is_label) {
        return Err(NameError::NotSubdomain);
    }
    Ok(())
}

fn is_label(s: &str) -> bool {
    let b = s.as_bytes();
    let alnum = |c: &u8| c.is_ascii_lowercase() || c.is_ascii_digit();
    match (b.first(), b.last()) {
        (Some(first), Some(last)) => {
            alnum(first) && alnum(last) && b.iter().all(|c| alnum(c) || *c == b'-')
        }
        _ => false,
    }
}

/// IANA service name, as used for port names.
pub fn iana_svc_name(s: &str) -> Result<(), NameError> {
    if s.len() > IANA_SVC_NAME_MAX {
        return Err(NameError::TooLong(IANA_SVC_NAME_MAX));
    }
    if !s
        .bytes()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-')
    {
        return Err(NameError::ServiceNameCharacters);
    }
    if !s.bytes().any(|c| c.is_ascii_lowercase()) {
        return Err(NameError::ServiceNameNoLetter);
    }
    if s.contains("--") {
        return Err(NameError::ServiceNameConsecutiveHyphens);
    }
    if s.starts_with('-') || s.ends_with('-') {
        return Err(NameError::ServiceNameHyphenAtEnd);
    }
    Ok(())
}

/// Env var names: since RelaxedEnvironmentVariableValidation went GA (on in 1.36), any
/// printable ASCII except '=' is allowed.
pub fn env_var_name(s: &str) -> Result<(), NameError> {
    if s.bytes().all(|c| (b' '..=b'~').contains(&c) && c != b'=') {
        Ok(())
    } else {
        Err(NameError::EnvVarName)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(dns1123_label("a-1").is_ok());
        assert_eq!(dns1123_label("-a"), Err(NameError::NotLabel));
        assert!(dns1123_label("A").is_err());
        assert_eq!(dns1123_label(&"a".repeat(64)), Err(NameError::TooLong(63)));
        assert!(dns1123_subdomain("a.b-c.d", 253).is_ok());
        assert_eq!(dns1123_subdomain("a..b", 253), Err(NameError::NotSubdomain));
        assert!(iana_svc_name("http-alt").is_ok());
        assert_eq!(iana_svc_name("8080"), Err(NameError::ServiceNameNoLetter));
        assert_eq!(
            iana_svc_name("a--b"),
            Err(NameError::ServiceNameConsecutiveHyphens)
        );
        assert_eq!(iana_svc_name("-ab"), Err(NameError::ServiceNameHyphenAtEnd));
        assert_eq!(iana_svc_name("A"), Err(NameError::ServiceNameCharacters));
        assert!(env_var_name("MY.VAR-1 x").is_ok());
        assert!(env_var_name("A=B").is_err());
        assert!(env_var_name("tab\there").is_err());
        assert_eq!(
            NameError::NotLabel.to_string(),
            "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character"
        );
    }
}
