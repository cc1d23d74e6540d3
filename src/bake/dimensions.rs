//! Custom metering's dimensions (`MPGATE_DIMENSIONS`): comma-separated `name[:tagkey|tagkey...]`
//! entries, at most 24 (the Marketplace limit per container product), each name and tag key free of
//! the delimiters of the bake syntax and of the usage-line format.
#![forbid(unsafe_code)]

const VAR: &str = "MPGATE_DIMENSIONS";

/// `name[:tagkey|tagkey...],...` → (name, tag keys), validated.
pub(super) fn parse(list: &str) -> Result<Vec<(String, Vec<String>)>, String> {
    let mut out: Vec<(String, Vec<String>)> = Vec::new();
    for entry in list.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let (name, keys) = entry.split_once(':').unwrap_or((entry, ""));
        let name_ok = (1..=255).contains(&name.chars().count())
            && syntax_free(name)
            && name.chars().all(|c| c.is_ascii_graphic());
        if !name_ok {
            return Err(format!(
                "{VAR}: dimension name {name:?} must be 1-255 printable ASCII characters without space , : | = (the model's UsageDimension, minus the bake and usage-line delimiters)"
            ));
        }
        if out.iter().any(|(n, _)| n == name) {
            return Err(format!("{VAR}: dimension {name:?} is listed twice"));
        }
        out.push((name.to_string(), tag_keys(name, keys)?));
    }
    if out.is_empty() {
        return Err(format!("{VAR} lists no dimension: give at least one name[:tagkey|tagkey...]"));
    }
    if out.len() > 24 {
        return Err(format!(
            "{VAR} lists {} dimensions; AWS Marketplace allows at most 24 per container product",
            out.len()
        ));
    }
    Ok(out)
}

/// The `|`-separated tag keys of dimension `name`.
fn tag_keys(name: &str, keys: &str) -> Result<Vec<String>, String> {
    let mut tag_keys: Vec<String> = Vec::new();
    for key in keys.split('|').filter(|k| !k.is_empty()) {
        let key_ok = (1..=100).contains(&key.len())
            && syntax_free(key)
            && key.chars().all(|c| c.is_ascii_alphanumeric() || "+-._/@".contains(c));
        if !key_ok {
            return Err(format!(
                "{VAR}: tag key {key:?} of dimension {name:?} must be 1-100 characters of a-zA-Z0-9+-._/@ (the model's TagKey, minus the usage-line delimiters)"
            ));
        }
        if tag_keys.iter().any(|k| k == key) {
            return Err(format!("{VAR}: tag key {key:?} is listed twice for dimension {name:?}"));
        }
        tag_keys.push(key.to_string());
    }
    Ok(tag_keys)
}

/// Free of whitespace and of `,` `:` `|` `=`.
fn syntax_free(s: &str) -> bool {
    !s.contains(|c: char| c.is_whitespace() || ",:|=".contains(c))
}
