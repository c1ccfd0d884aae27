//! Percent-decoding, for topics in paths, query strings and `ce-*` header values.

/// Decodes `%XX` escapes (UTF-8 once decoded); errors name the text and the escape.
pub fn percent_decode(text: &str) -> Result<String, String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = text
                .get(i + 1..i + 3)
                .ok_or_else(|| format!("`{text}` has a truncated %-escape"))?;
            let byte = u8::from_str_radix(hex, 16)
                .map_err(|_| format!("`{text}` has an invalid %-escape `%{hex}`"))?;
            out.push(byte);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| format!("`{text}` is not UTF-8 once decoded"))
}

#[cfg(test)]
mod tests {
    use super::percent_decode;

    #[test]
    fn escapes_decode_and_bad_ones_are_named() {
        assert_eq!(percent_decode("caf%C3%A9%20100%25").unwrap(), "café 100%");
        assert!(percent_decode("a%2").unwrap_err().contains("truncated"));
        assert!(percent_decode("a%zz").unwrap_err().contains("`%zz`"));
        assert!(percent_decode("%FF").unwrap_err().contains("not UTF-8"));
    }
}
