//! Query-string pairs with `application/x-www-form-urlencoded` semantics, without allocating.
//!
//! Same result as `form_urlencoded::parse` (split on `&`, skip empty pieces, name and value
//! split at the first `=`, `+` is a space, percent-decoding, invalid UTF-8 replaced), but each
//! name and value is borrowed from the query unless it contains `%` or `+`, and callers decode
//! only the pieces they need: finding `op_token` in a long query no longer decodes (and
//! allocates) every other parameter.

use std::borrow::Cow;

/// The raw `(name, value)` pieces of `query`, not decoded yet (see [`decode`]).
pub(crate) fn raw_pairs(query: &str) -> impl Iterator<Item = (&str, &str)> {
    query
        .split('&')
        .filter(|piece| !piece.is_empty())
        .map(|piece| piece.split_once('=').unwrap_or((piece, "")))
}

/// Decodes one name or value; borrowed when there is nothing to decode.
pub(crate) fn decode(s: &str) -> Cow<'_, str> {
    if !s.bytes().any(|b| b == b'%' || b == b'+') {
        return Cow::Borrowed(s);
    }
    let spaced = s.replace('+', " ");
    Cow::Owned(
        percent_encoding::percent_decode_str(&spaced)
            .decode_utf8_lossy()
            .into_owned(),
    )
}

/// True if the raw `name` decodes to `wanted`. Decoding never lengthens a name, so a shorter
/// one is not decoded at all.
pub(crate) fn name_is(name: &str, wanted: &str) -> bool {
    name == wanted || (name.len() >= wanted.len() && decode(name) == wanted)
}

/// The decoded value of the first parameter called `name`.
pub(crate) fn param<'q>(query: &'q str, name: &str) -> Option<Cow<'q, str>> {
    raw_pairs(query)
        .find(|(k, _)| name_is(k, name))
        .map(|(_, v)| decode(v))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ours(q: &str) -> Vec<(String, String)> {
        raw_pairs(q)
            .map(|(k, v)| (decode(k).into_owned(), decode(v).into_owned()))
            .collect()
    }

    fn reference(q: &str) -> Vec<(String, String)> {
        form_urlencoded::parse(q.as_bytes())
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect()
    }

    #[test]
    fn agrees_with_form_urlencoded() {
        for q in [
            "",
            "&",
            "&&a",
            "a",
            "a=",
            "=b",
            "a=b=c",
            "a=b&c=d",
            "a+b=c+d",
            "a%20b=%41%42",
            "op%5Ftoken=x&op_token=y",
            "bad=%zz%4",
            "utf=%C3%A9&broken=%C3",
            "sig=sha512:AAA%3D%3D&x=%2B+",
            "a=b;c=d",
            "é=ü&%E9=1",
        ] {
            assert_eq!(ours(q), reference(q), "{q:?}");
        }
    }

    #[test]
    fn finds_encoded_names_and_borrows_plain_values() {
        assert_eq!(param("a=1&op%5Ftoken=x", "op_token").as_deref(), Some("x"));
        assert_eq!(param("op_token=a%2Eb", "op_token").as_deref(), Some("a.b"));
        assert!(matches!(
            param("op_token=abc", "op_token"),
            Some(Cow::Borrowed("abc"))
        ));
        assert_eq!(param("op_tokenx=1&x=2", "op_token"), None);
        assert_eq!(param("x&op_token", "op_token").as_deref(), Some(""));
    }
}
