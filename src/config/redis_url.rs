//! `[auth.replay] url` and `[cluster] redis_url`: where Redis is. The
//! configuration parses it once, at load; `cluster::redis` connects to the
//! parsed address.

/// Where Redis is: `redis://host[:port][/db]` or `rediss://...` (TLS), parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedisUrl {
    /// Host name or IP address (IPv6 without brackets).
    pub host: String,
    /// TCP port, 6379 when the URL has none.
    pub port: u16,
    /// Database index for `SELECT`; `None` keeps Redis's default (0).
    pub db: Option<u32>,
    /// `rediss://`: TLS, the server's certificate checked against the host.
    pub tls: bool,
}

impl RedisUrl {
    /// Parses `redis://host[:port][/db]` or `rediss://` (TLS) (port 6379 by
    /// default; IPv6 hosts in brackets). Credentials in the URL are refused:
    /// the password comes from `password_env` or `password_file`, like every
    /// other secret.
    pub fn parse(url: &str) -> Result<RedisUrl, &'static str> {
        let (tls, rest) = match (url.strip_prefix("redis://"), url.strip_prefix("rediss://")) {
            (Some(rest), _) => (false, rest),
            (None, Some(rest)) => (true, rest),
            (None, None) => return Err("must start with redis:// or rediss://"),
        };
        let (authority, db) = match rest.split_once('/') {
            Some((authority, "")) => (authority, None),
            Some((authority, db)) => {
                let db: u32 = db
                    .parse()
                    .map_err(|_| "must end in /<database number> if it has a path")?;
                (authority, Some(db))
            }
            None => (rest, None),
        };
        if authority.contains('@') {
            return Err("must not hold credentials; use auth.replay.password_env or password_file");
        }
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (host, after) = v6.split_once(']').ok_or("has an unclosed [ in its host")?;
            let port = match after {
                "" => None,
                p => Some(p.strip_prefix(':').ok_or("has junk after its IPv6 host")?),
            };
            (host, port)
        } else {
            match authority.rsplit_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (authority, None),
            }
        };
        let port = match port {
            None => 6379,
            Some(p) => p.parse().ok().filter(|&p| p != 0).ok_or("has a bad port")?,
        };
        let valid_host = |h: &str| {
            !h.is_empty()
                && h.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'_'))
        };
        if !valid_host(host) {
            return Err("has no valid host");
        }
        Ok(RedisUrl {
            host: host.to_owned(),
            port,
            db,
            tls,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let ok = |host: &str, port, db| {
            Ok(RedisUrl {
                host: host.into(),
                port,
                db,
                tls: false,
            })
        };
        let tls = |host: &str, port, db| {
            Ok(RedisUrl {
                host: host.into(),
                port,
                db,
                tls: true,
            })
        };
        let cases: &[(&str, Result<RedisUrl, &str>)] = &[
            ("redis://127.0.0.1:6379", ok("127.0.0.1", 6379, None)),
            ("redis://127.0.0.1", ok("127.0.0.1", 6379, None)),
            ("redis://redis.internal:7000/2", ok("redis.internal", 7000, Some(2))),
            ("redis://localhost:6380/", ok("localhost", 6380, None)),
            ("redis://[::1]:6390", ok("::1", 6390, None)),
            ("redis://[::1]", ok("::1", 6379, None)),
            ("http://127.0.0.1:6379", Err("must start with redis:// or rediss://")),
            ("rediss://h:1", tls("h", 1, None)),
            ("rediss://[::1]/3", tls("::1", 6379, Some(3))),
            ("redis:/h:1", Err("must start with redis:// or rediss://")),
            ("redis://", Err("has no valid host")),
            ("redis://:6379", Err("has no valid host")),
            ("redis://h:0", Err("has a bad port")),
            ("redis://h:99999", Err("has a bad port")),
            ("redis://h:x", Err("has a bad port")),
            ("redis://h:1/x", Err("must end in /<database number> if it has a path")),
            (
                "redis://:pw@h:1",
                Err("must not hold credentials; use auth.replay.password_env or password_file"),
            ),
            ("redis://[::1:1", Err("has an unclosed [ in its host")),
            ("redis://[::1]x", Err("has junk after its IPv6 host")),
            ("redis://h h:1", Err("has no valid host")),
        ];
        for (url, want) in cases {
            assert_eq!(RedisUrl::parse(url), *want, "{url}");
        }
    }
}
