//! Query strings of the routes every player hits (keys, playlists), read in
//! place rather than through axum's `Query`: serde, an owned `String` per
//! value and a percent-decoding pass over a token of hundreds of bytes, per
//! request, for values that are base64url and need no decoding.

use std::borrow::Cow;

use axum::http::StatusCode;
use axum::response::Response;

/// The values of `names` in `query`, decoded as a form
/// (`application/x-www-form-urlencoded`, as `Query` does) but borrowed where
/// nothing needs decoding. Other parameters are ignored. `None` when one of
/// `names` is given twice: two values leave it unclear which one was meant
/// (`Query` refused that too).
pub(super) fn params<'a, const N: usize>(
    query: Option<&'a str>,
    names: [&str; N],
) -> Option<[Option<Cow<'a, str>>; N]> {
    let mut values = [const { None }; N];
    for pair in query.unwrap_or_default().split('&').filter(|pair| !pair.is_empty()) {
        let (name, value) = form_pair(pair);
        let Some(at) = names.iter().position(|wanted| *wanted == name) else {
            continue;
        };
        if values[at].replace(value).is_some() {
            return None;
        }
    }
    Some(values)
}

/// The answer when [`params`] refuses a query.
pub(super) fn given_twice() -> Response {
    super::status(StatusCode::BAD_REQUEST, "a query parameter is given twice\n")
}

/// One `name=value` pair, decoded only if it holds an escape or a `+`.
fn form_pair(pair: &str) -> (Cow<'_, str>, Cow<'_, str>) {
    if pair.contains(['%', '+']) {
        let (name, value) = form_urlencoded::parse(pair.as_bytes()).next().unwrap_or_default();
        return (Cow::Owned(name.into_owned()), Cow::Owned(value.into_owned()));
    }
    let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
    (Cow::Borrowed(name), Cow::Borrowed(value))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_borrowed_unless_they_need_decoding() {
        let [edk, token, ticket] = params(Some("edk=AbC_-&token=a.b.c&other=1"), ["edk", "token", "ticket"]).unwrap();
        assert!(matches!(edk, Some(Cow::Borrowed("AbC_-"))));
        assert!(matches!(token, Some(Cow::Borrowed("a.b.c"))));
        assert_eq!(ticket, None);
        let [ticket] = params(Some("ticket=x%2By+z"), ["ticket"]).unwrap();
        assert_eq!(ticket.as_deref(), Some("x+y z"));
        let [token, edk] = params(Some("&t%6Fken=a&&edk"), ["token", "edk"]).unwrap();
        assert_eq!(token.as_deref(), Some("a"), "names are decoded too");
        assert_eq!(edk.as_deref(), Some(""), "a name alone has an empty value");
        assert_eq!(params(None, ["token"]), Some([None]));
    }

    #[test]
    fn a_parameter_given_twice_is_refused() {
        assert_eq!(params(Some("token=a&token=b"), ["token"]), None);
        assert_eq!(params(Some("edk=a&ticket=t&edk=a"), ["edk", "ticket"]), None);
        assert!(
            params(Some("other=1&other=2"), ["token"]).is_some(),
            "only the names asked for"
        );
    }
}
