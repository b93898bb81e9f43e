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
    /// `redis+sentinel://`: the primary is found through Sentinel (`host`
    /// and `port` are then the first sentinel's).
    pub sentinel: Option<Box<SentinelUrl>>,
}

/// The Sentinel part of `redis+sentinel://host:port[,host:port...]/master[/db]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SentinelUrl {
    /// The master (service) name the sentinels monitor.
    pub master: String,
    /// Every sentinel, (host, port); port 26379 when the URL has none.
    pub nodes: Vec<(String, u16)>,
}

impl RedisUrl {
    /// Parses `redis://host[:port][/db]` or `rediss://` (TLS) (port 6379 by
    /// default; IPv6 hosts in brackets). Credentials in the URL are refused:
    /// the password comes from `password_env` or `password_file`, like every
    /// other secret.
    pub fn parse(url: &str) -> Result<RedisUrl, &'static str> {
        for (scheme, tls) in [("redis+sentinel://", false), ("rediss+sentinel://", true)] {
            if let Some(rest) = url.strip_prefix(scheme) {
                return Self::parse_sentinel(rest, tls);
            }
        }
        let (tls, rest) = match (url.strip_prefix("redis://"), url.strip_prefix("rediss://")) {
            (Some(rest), _) => (false, rest),
            (None, Some(rest)) => (true, rest),
            (None, None) => return Err("must start with redis://, rediss://, redis+sentinel:// or rediss+sentinel://"),
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
        let (host, port) = host_port(authority, 6379)?;
        Ok(RedisUrl {
            host,
            port,
            db,
            tls,
            sentinel: None,
        })
    }

    /// `host:port[,host:port...]/master[/db]` after `redis+sentinel://`.
    fn parse_sentinel(rest: &str, tls: bool) -> Result<RedisUrl, &'static str> {
        let mut parts = rest.splitn(3, '/');
        let nodes = parts.next().unwrap_or_default();
        let master = parts.next().unwrap_or_default();
        let db = match parts.next() {
            None | Some("") => None,
            Some(db) => Some(
                db.parse()
                    .map_err(|_| "must end in /<master name>[/<database number>]")?,
            ),
        };
        let valid_master = |m: &str| {
            !m.is_empty()
                && m.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'))
        };
        if !valid_master(master) {
            return Err(
                "must name the Sentinel master after the sentinels: redis+sentinel://host:26379,host2:26379/mymaster",
            );
        }
        let nodes = nodes
            .split(',')
            .map(|node| host_port(node, 26379))
            .collect::<Result<Vec<_>, _>>()?;
        let (host, port) = nodes[0].clone();
        Ok(RedisUrl {
            host,
            port,
            db,
            tls,
            sentinel: Some(Box::new(SentinelUrl {
                master: master.to_owned(),
                nodes,
            })),
        })
    }
}

/// `host[:port]` (IPv6 in brackets), `default_port` when none is given.
fn host_port(authority: &str, default_port: u16) -> Result<(String, u16), &'static str> {
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
        None => default_port,
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
    Ok((host.to_owned(), port))
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
                sentinel: None,
            })
        };
        let tls = |host: &str, port, db| {
            Ok(RedisUrl {
                host: host.into(),
                port,
                db,
                tls: true,
                sentinel: None,
            })
        };
        let cases: &[(&str, Result<RedisUrl, &str>)] = &[
            ("redis://127.0.0.1:6379", ok("127.0.0.1", 6379, None)),
            ("redis://127.0.0.1", ok("127.0.0.1", 6379, None)),
            ("redis://redis.internal:7000/2", ok("redis.internal", 7000, Some(2))),
            ("redis://localhost:6380/", ok("localhost", 6380, None)),
            ("redis://[::1]:6390", ok("::1", 6390, None)),
            ("redis://[::1]", ok("::1", 6379, None)),
            ("http://127.0.0.1:6379", Err(SCHEMES)),
            ("rediss://h:1", tls("h", 1, None)),
            ("rediss://[::1]/3", tls("::1", 6379, Some(3))),
            ("redis:/h:1", Err(SCHEMES)),
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

    const SCHEMES: &str = "must start with redis://, rediss://, redis+sentinel:// or rediss+sentinel://";

    #[test]
    fn sentinel_urls() {
        let url = RedisUrl::parse("redis+sentinel://10.0.0.1,10.0.0.2:26380,[::1]:5/mymaster/2").unwrap();
        let sentinel = url.sentinel.clone().unwrap();
        assert_eq!(sentinel.master, "mymaster");
        assert_eq!(
            sentinel.nodes,
            [
                ("10.0.0.1".to_owned(), 26379),
                ("10.0.0.2".to_owned(), 26380),
                ("::1".to_owned(), 5)
            ]
        );
        assert_eq!(
            (url.host.as_str(), url.port, url.db, url.tls),
            ("10.0.0.1", 26379, Some(2), false)
        );
        assert!(RedisUrl::parse("rediss+sentinel://s:1/m").unwrap().tls);
        let no_master =
            "must name the Sentinel master after the sentinels: redis+sentinel://host:26379,host2:26379/mymaster";
        // (url, error)
        let refused: &[(&str, &str)] = &[
            ("redis+sentinel://s1,s2", no_master),
            ("redis+sentinel://s1/", no_master),
            ("redis+sentinel://s1/m m", no_master),
            ("redis+sentinel://s1,,s2/m", "has no valid host"),
            ("redis+sentinel://s1:0/m", "has a bad port"),
            (
                "redis+sentinel://s1/m/x",
                "must end in /<master name>[/<database number>]",
            ),
            (
                "redis+sentinel://:pw@s1/m",
                "must not hold credentials; use auth.replay.password_env or password_file",
            ),
        ];
        for (url, want) in refused {
            assert_eq!(RedisUrl::parse(url), Err(*want), "{url}");
        }
    }
}
