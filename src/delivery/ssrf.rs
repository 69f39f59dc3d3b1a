//! SSRF guard for webhook targets: decides which IP addresses may be contacted, validates
//! target URLs (every numeric IPv4 spelling is normalised by the `url` crate), and provides a reqwest DNS
//! resolver that drops non-public addresses so DNS rebinding fails at connect time.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use url::{Host, Url};

/// Errors from validating a webhook target URL.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TargetError {
    /// The URL did not parse, was relative, or used a scheme other than http/https.
    #[error("target must be an absolute http:// or https:// URL: {0}")]
    NotHttpUrl(String),
    /// The URL embeds a username or password, which would leak into logs and requests.
    #[error("target URL must not contain credentials (user:password@)")]
    Credentials,
    /// The URL has no host component.
    #[error("target URL has no host")]
    MissingHost,
    /// The host is (or resolves to) an address the policy does not allow.
    #[error(
        "target host {host} resolves to {ip}, which is not a public address; delivery to \
         non-public addresses is blocked unless BEEMA_ALLOW_PRIVATE_TARGETS=true or the address \
         is inside BEEMA_ALLOWED_TARGET_CIDRS"
    )]
    Blocked {
        /// The host as written in the URL (or as given to the resolver).
        host: String,
        /// The offending address.
        ip: IpAddr,
    },
    /// DNS resolution failed or returned no addresses.
    #[error("could not resolve target host {0}")]
    Unresolvable(String),
}

// The policy is plain settings, so it lives with the configuration; what it allows is decided here.
pub use crate::config::TargetPolicy;

impl TargetPolicy {
    /// Whether `ip` may be contacted: always with `allow_private`, otherwise if it is public
    /// or inside an allowed CIDR. For IPv6 forms that embed an IPv4 address (mapped,
    /// compatible, NAT64, 6to4) the embedded address is also checked against the CIDRs,
    /// since an operator allowing `10.1.0.0/16` means that host however it is spelled.
    pub fn allows(&self, ip: IpAddr) -> bool {
        if self.allow_private || is_public_ip(ip) {
            return true;
        }
        let in_cidrs = |ip: IpAddr| self.allowed_cidrs.iter().any(|net| net.contains(&ip));
        if in_cidrs(ip) {
            return true;
        }
        match ip {
            IpAddr::V6(v6) => embedded_v4(v6).is_some_and(|v4| in_cidrs(IpAddr::V4(v4))),
            IpAddr::V4(_) => false,
        }
    }
}

/// Returns the IPv4 address embedded in an IPv6 address of a form that can reach that
/// IPv4 host: IPv4-mapped `::ffff:a.b.c.d`, SIIT `::ffff:0:a.b.c.d`, IPv4-compatible
/// `::a.b.c.d`, NAT64 `64:ff9b::a.b.c.d`, and 6to4 `2002:aabb:ccdd::`.
fn embedded_v4(v6: Ipv6Addr) -> Option<Ipv4Addr> {
    let s = v6.segments();
    let low = Ipv4Addr::new((s[6] >> 8) as u8, s[6] as u8, (s[7] >> 8) as u8, s[7] as u8);
    match s {
        // IPv4-mapped.
        [0, 0, 0, 0, 0, 0xffff, _, _] => Some(low),
        // IPv4-translated (SIIT, RFC 2765).
        [0, 0, 0, 0, 0xffff, 0, _, _] => Some(low),
        // IPv4-compatible (deprecated); `::` and `::1` are their own thing, not v4.
        [0, 0, 0, 0, 0, 0, hi, lo] if hi != 0 || lo > 1 => Some(low),
        // NAT64 well-known prefix.
        [0x64, 0xff9b, 0, 0, 0, 0, _, _] => Some(low),
        // 6to4: the v4 address sits right after the 2002::/16 prefix.
        [0x2002, a, b, ..] => Some(Ipv4Addr::new(
            (a >> 8) as u8,
            a as u8,
            (b >> 8) as u8,
            b as u8,
        )),
        _ => None,
    }
}

/// Whether an IPv4 address is globally routable (not special-purpose per the IANA
/// registry).
fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    let special = a == 0 // "this network" 0/8, includes unspecified
        || a == 10 // RFC 1918
        || a == 127 // loopback
        || (a == 100 && (64..128).contains(&b)) // CGNAT 100.64/10
        || (a == 169 && b == 254) // link-local, includes cloud metadata 169.254.169.254
        || (a == 172 && (16..32).contains(&b)) // RFC 1918
        || (a == 192 && b == 168) // RFC 1918
        || (a == 192 && b == 0 && c == 0) // IETF protocol assignments 192.0.0/24
        || (a == 192 && b == 0 && c == 2) // TEST-NET-1
        || (a == 192 && b == 88 && c == 99) // deprecated 6to4 relay anycast
        || (a == 198 && (b == 18 || b == 19)) // benchmarking 198.18/15
        || (a == 198 && b == 51 && c == 100) // TEST-NET-2
        || (a == 203 && b == 0 && c == 113) // TEST-NET-3
        || a >= 224; // multicast 224/4, reserved 240/4, broadcast
    !special
}

/// Whether an IPv6 address is globally routable; forms embedding IPv4 are judged by the
/// embedded address because that is the host they actually reach.
fn is_public_v6(ip: Ipv6Addr) -> bool {
    if ip.is_unspecified() || ip.is_loopback() {
        return false;
    }
    if let Some(v4) = embedded_v4(ip) {
        return is_public_v4(v4);
    }
    let s = ip.segments();
    // Only 2000::/3 is allocated for global unicast; everything else (ULA fc00::/7,
    // link-local fe80::/10, site-local fec0::/10, multicast ff00::/8, discard 100::/64,
    // NAT64 local-use 64:ff9b:1::/48, reserved) is not a valid public target.
    if s[0] & 0xe000 != 0x2000 {
        return false;
    }
    // 2001::/23 holds IETF protocol assignments (Teredo, benchmarking, ORCHID…) and
    // 2001:db8::/32 is documentation; neither is a real webhook receiver.
    let ietf_2001 = s[0] == 0x2001 && (s[1] < 0x200 || s[1] == 0x0db8);
    // Documentation 3fff::/20 (RFC 9637).
    let doc_3fff = (s[0] & 0xfff0) == 0x3ff0;
    let special = ietf_2001 || doc_3fff;
    !special
}

/// Whether `ip` is a public, globally routable address that webhooks may target by
/// default. Loopback, private, link-local (incl. cloud metadata), CGNAT, documentation,
/// benchmarking, multicast, reserved and unspecified addresses are not, and IPv6 forms
/// embedding an IPv4 address are judged by that IPv4 address.
pub fn is_public_ip(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => is_public_v6(v6),
    }
}

/// Checks a single address against the policy, naming `host` in the error.
fn check_ip(policy: &TargetPolicy, host: &str, ip: IpAddr) -> Result<(), TargetError> {
    if policy.allows(ip) {
        Ok(())
    } else {
        Err(TargetError::Blocked {
            host: host.to_owned(),
            ip,
        })
    }
}

/// Syntax-only validation: absolute URL, http or https, no credentials, has a host.
pub fn check_url_syntax(url: &str) -> Result<Url, TargetError> {
    let parsed = Url::parse(url.trim()).map_err(|e| TargetError::NotHttpUrl(e.to_string()))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(TargetError::NotHttpUrl(format!(
            "unsupported scheme {:?}",
            parsed.scheme()
        )));
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(TargetError::Credentials);
    }
    match parsed.host_str() {
        Some(h) if !h.is_empty() => Ok(parsed),
        _ => Err(TargetError::MissingHost),
    }
}

/// Returns the IP a URL's host denotes if it is an IP literal. The `url` crate parses hosts
/// as WHATWG URLs do, so every numeric IPv4 spelling (`2130706433`, `0x7f.1`, `127.1`,
/// `0177.0.0.1`, ...) is already an `Ipv4` host here, never a domain name: the table in
/// `tests::ip_spellings_are_normalised_by_the_url_crate` holds it to that.
fn literal_ip(url: &Url) -> Option<IpAddr> {
    match url.host()? {
        Host::Ipv4(v4) => Some(IpAddr::V4(v4)),
        Host::Ipv6(v6) => Some(IpAddr::V6(v6)),
        Host::Domain(_) => None,
    }
}

/// Full validation of a target URL at registration time: syntax, then the address.
///
/// IP-literal hosts are checked directly; domain names are resolved and refused if ANY
/// resolved address is disallowed (a name mixing public and private records is suspect).
/// With `allow_private` no resolution is done, since every address would be allowed.
pub async fn check_url(policy: &TargetPolicy, url: &str) -> Result<Url, TargetError> {
    let parsed = check_url_syntax(url)?;
    if policy.allow_private {
        return Ok(parsed);
    }
    let host = parsed
        .host_str()
        .ok_or(TargetError::MissingHost)?
        .to_owned();
    if let Some(ip) = literal_ip(&parsed) {
        check_ip(policy, &host, ip)?;
        return Ok(parsed);
    }
    let port = parsed.port_or_known_default().unwrap_or(80);
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), port))
        .await
        .map_err(|_| TargetError::Unresolvable(host.clone()))?
        .collect();
    if addrs.is_empty() {
        return Err(TargetError::Unresolvable(host));
    }
    for addr in &addrs {
        check_ip(policy, &host, addr.ip())?;
    }
    Ok(parsed)
}

/// Per-attempt check for URLs whose host is an IP literal. reqwest does not call the DNS
/// resolver for IP literals, so [`GuardedResolver`] never sees them; the sender calls this
/// before each attempt. Domain hosts pass (the resolver guards them).
pub fn check_ip_target(policy: &TargetPolicy, url: &Url) -> Result<(), TargetError> {
    if policy.allow_private {
        return Ok(());
    }
    let host = url.host_str().ok_or(TargetError::MissingHost)?;
    match literal_ip(url) {
        Some(ip) => check_ip(policy, host, ip),
        None => Ok(()),
    }
}

/// reqwest DNS resolver that only returns allowed addresses, so a name that passed
/// validation but later resolves to a private address (DNS rebinding) fails to connect.
#[derive(Clone, Debug)]
pub struct GuardedResolver {
    policy: Arc<TargetPolicy>,
}

impl GuardedResolver {
    /// Creates a resolver enforcing `policy`.
    pub fn new(policy: Arc<TargetPolicy>) -> Self {
        GuardedResolver { policy }
    }
}

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let policy = Arc::clone(&self.policy);
        let host = name.as_str().to_owned();
        Box::pin(async move {
            // Port 0: reqwest substitutes the URL's port.
            let resolved: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let first_blocked = resolved
                .iter()
                .map(SocketAddr::ip)
                .find(|ip| !policy.allows(*ip));
            let allowed: Vec<SocketAddr> = resolved
                .into_iter()
                .filter(|a| policy.allows(a.ip()))
                .collect();
            if allowed.is_empty() {
                let err: Box<dyn std::error::Error + Send + Sync> = match first_blocked {
                    Some(ip) => Box::new(TargetError::Blocked { host, ip }),
                    None => Box::new(TargetError::Unresolvable(host)),
                };
                return Err(err);
            }
            let addrs: reqwest::dns::Addrs = Box::new(allowed.into_iter());
            Ok(addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::dns::Resolve;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn deny() -> TargetPolicy {
        TargetPolicy::default()
    }

    /// `10.0.0.0/8, 127.0.0.1` as ranges (a bare address is a single host).
    fn nets(list: &str) -> Vec<ipnet::IpNet> {
        list.split(',')
            .map(str::trim)
            .map(|n| n.parse().unwrap_or_else(|_| ip(n).into()))
            .collect()
    }

    #[test]
    fn non_public_v4() {
        for s in [
            "0.0.0.0",
            "0.1.2.3",
            "10.0.0.1",
            "10.255.255.255",
            "100.64.0.1",
            "100.127.255.255",
            "127.0.0.1",
            "127.255.0.1",
            "169.254.169.254",
            "169.254.0.1",
            "172.16.0.1",
            "172.31.255.255",
            "192.0.0.1",
            "192.0.2.1",
            "192.168.1.1",
            "198.18.0.1",
            "198.19.255.255",
            "198.51.100.7",
            "203.0.113.9",
            "224.0.0.1",
            "239.255.255.250",
            "240.0.0.1",
            "255.255.255.255",
        ] {
            assert!(!is_public_ip(ip(s)), "{s} should not be public");
        }
    }

    #[test]
    fn public_v4() {
        for s in [
            "1.1.1.1",
            "8.8.8.8",
            "93.184.216.34",
            "100.63.255.255",
            "100.128.0.1",
            "172.15.255.255",
            "172.32.0.1",
            "192.0.1.1",
            "198.17.255.255",
            "198.20.0.1",
            "223.255.255.254",
        ] {
            assert!(is_public_ip(ip(s)), "{s} should be public");
        }
    }

    #[test]
    fn non_public_v6() {
        for s in [
            "::",
            "::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "::ffff:169.254.169.254",
            "::ffff:0:192.168.0.1",
            "::127.0.0.1",
            "::10.0.0.1",
            "64:ff9b::127.0.0.1",
            "64:ff9b::a9fe:a9fe",
            "64:ff9b:1::1",
            "2002:7f00:1::1",
            "2002:0a00:0001::",
            "2002:c0a8:0101::5",
            "fc00::1",
            "fd00::1",
            "fe80::1",
            "febf::1",
            "fec0::1",
            "ff02::1",
            "100::1",
            "2001:db8::1",
            "2001::1",
            "2001:2::1",
            "3fff::1",
        ] {
            assert!(!is_public_ip(ip(s)), "{s} should not be public");
        }
    }

    #[test]
    fn public_v6() {
        for s in [
            "2606:4700:4700::1111",
            "2001:4860:4860::8888",
            "2a00:1450:4001::1",
            "::ffff:93.184.216.34",
            "64:ff9b::8.8.8.8",
            "2002:0808:0808::1",
        ] {
            assert!(is_public_ip(ip(s)), "{s} should be public");
        }
    }

    /// The address the guard sees for `host` written into a URL, as [`check_url_syntax`] then
    /// [`literal_ip`] see it; a bare IPv6 address gets the brackets a URL needs.
    fn host_ip(host: &str) -> Option<IpAddr> {
        let host = if host.contains(':') && !host.starts_with('[') {
            format!("[{host}]")
        } else {
            host.to_string()
        };
        let url = Url::parse(&format!("http://{host}/")).ok()?;
        literal_ip(&url)
    }

    /// Every inet_aton spelling of an IPv4 address reaches the same host; the `url` crate must
    /// turn each into that address (so no hand-written parser is needed), and refuse or keep
    /// as a domain what is not an address.
    #[test]
    fn ip_spellings_are_normalised_by_the_url_crate() {
        let lo = Some(ip("127.0.0.1"));
        for s in [
            "127.0.0.1",
            "2130706433",
            "0x7f000001",
            "0X7F000001",
            "0x7f.1",
            "127.1",
            "127.0.1",
            "0177.0.0.1",
            "0177.1",
            "0x7f.0.0.0x1",
            "127.0.0.1.",
            "017700000001",
        ] {
            assert_eq!(host_ip(s), lo, "{s}");
        }
        assert_eq!(host_ip("0"), Some(ip("0.0.0.0")));
        assert_eq!(host_ip("0x"), Some(ip("0.0.0.0")));
        assert_eq!(host_ip("10.1"), Some(ip("10.0.0.1")));
        assert_eq!(host_ip("169.16689662"), Some(ip("169.254.169.254")));
        assert_eq!(host_ip("[::1]"), Some(ip("::1")));
        assert_eq!(host_ip("::1"), Some(ip("::1")));
        assert_eq!(host_ip("[::ffff:127.0.0.1]"), Some(ip("::ffff:127.0.0.1")));
    }

    #[test]
    fn non_addresses_are_not_taken_for_addresses_by_the_url_crate() {
        for s in [
            "",
            "example.com",
            "localhost",
            "256.0.0.1",
            "1.2.3.4.5",
            "1.2.3.256",
            "1.2.65536",
            "1.16777216",
            "4294967296",
            "08.0.0.1",
            "0x1g",
            "+1.2.3.4",
            "1..2",
            "[::1",
            "[example]",
            "1.2.3.4..",
            "99999999999999999999999",
        ] {
            assert_eq!(host_ip(s), None, "{s:?}");
        }
        assert_eq!(host_ip("4294967295"), Some(ip("255.255.255.255")));
    }

    #[test]
    fn policy_allows() {
        assert!(deny().allows(ip("8.8.8.8")));
        assert!(!deny().allows(ip("10.0.0.1")));
        let open = TargetPolicy {
            allow_private: true,
            allowed_cidrs: vec![],
        };
        assert!(open.allows(ip("127.0.0.1")));
        assert!(open.allows(ip("::1")));
        let listed = TargetPolicy {
            allow_private: false,
            allowed_cidrs: nets("10.1.0.0/16, fd00::/8"),
        };
        assert!(listed.allows(ip("10.1.2.3")));
        assert!(!listed.allows(ip("10.2.0.1")));
        assert!(listed.allows(ip("fd00::5")));
        assert!(!listed.allows(ip("fe80::1")));
        // Embedded v4 forms match v4 CIDRs.
        assert!(listed.allows(ip("::ffff:10.1.0.9")));
        assert!(listed.allows(ip("64:ff9b::10.1.0.9")));
        assert!(!listed.allows(ip("::ffff:10.2.0.9")));
        assert!(!listed.allows(ip("::ffff:127.0.0.1")));
    }

    #[test]
    fn blocked_message_names_settings() {
        let e = TargetError::Blocked {
            host: "internal".into(),
            ip: ip("10.0.0.1"),
        };
        let msg = e.to_string();
        for needle in [
            "internal",
            "10.0.0.1",
            "not a public address",
            "BEEMA_ALLOW_PRIVATE_TARGETS",
            "BEEMA_ALLOWED_TARGET_CIDRS",
        ] {
            assert!(msg.contains(needle), "{msg} lacks {needle}");
        }
    }

    #[test]
    fn syntax_checks() {
        assert!(check_url_syntax("https://example.com/hook").is_ok());
        assert!(check_url_syntax("http://example.com:8080/x?y=1").is_ok());
        assert!(matches!(
            check_url_syntax("ftp://example.com/"),
            Err(TargetError::NotHttpUrl(_))
        ));
        assert!(matches!(
            check_url_syntax("/relative/path"),
            Err(TargetError::NotHttpUrl(_))
        ));
        assert!(matches!(
            check_url_syntax("not a url"),
            Err(TargetError::NotHttpUrl(_))
        ));
        assert!(matches!(
            check_url_syntax("file:///etc/passwd"),
            Err(TargetError::NotHttpUrl(_))
        ));
        assert_eq!(
            check_url_syntax("https://user:pw@example.com/"),
            Err(TargetError::Credentials)
        );
        assert_eq!(
            check_url_syntax("https://user@example.com/"),
            Err(TargetError::Credentials)
        );
        assert_eq!(
            check_url_syntax("https://:pw@example.com/"),
            Err(TargetError::Credentials)
        );
        // WHATWG parsing turns "http:///path" into host "path", so use a truly empty host.
        assert!(check_url_syntax("http://").is_err());
        assert!(check_url_syntax("https://:443/").is_err());
    }

    #[tokio::test]
    async fn check_url_refuses_every_spelling() {
        for u in [
            "http://2130706433/",
            "http://0x7f000001/",
            "http://0x7f.1/",
            "http://127.1/",
            "http://127.0.1/",
            "http://0177.0.0.1/",
            "http://[::ffff:127.0.0.1]/",
            "http://[::1]/",
            "http://169.254.169.254/latest/meta-data/",
            "http://10.0.0.1",
            "http://[fd00::1]/",
            "http://100.64.0.1/",
            "http://0.0.0.0/",
            "https://[64:ff9b::7f00:1]/",
            "http://localhost/",
            "http://localhost:8080/",
        ] {
            let r = check_url(&deny(), u).await;
            assert!(
                matches!(r, Err(TargetError::Blocked { .. })),
                "{u} gave {r:?}"
            );
        }
    }

    #[tokio::test]
    async fn check_url_allows_public_and_listed() {
        assert!(check_url(&deny(), "http://93.184.216.34/").await.is_ok());
        assert!(check_url(&deny(), "https://[2606:4700:4700::1111]/x")
            .await
            .is_ok());
        let listed = TargetPolicy {
            allow_private: false,
            allowed_cidrs: nets("10.0.0.0/8,127.0.0.1"),
        };
        assert!(check_url(&listed, "http://10.0.0.1/").await.is_ok());
        assert!(check_url(&listed, "http://localhost/").await.is_ok());
        assert!(check_url(&listed, "http://[::ffff:10.9.9.9]/")
            .await
            .is_ok());
        assert!(check_url(&listed, "http://192.168.0.1/").await.is_err());
        let open = TargetPolicy {
            allow_private: true,
            allowed_cidrs: vec![],
        };
        assert!(check_url(&open, "http://127.0.0.1/").await.is_ok());
        // No resolution with allow_private, so even unresolvable names pass.
        assert!(check_url(&open, "http://no-such-host.invalid/")
            .await
            .is_ok());
        // Syntax still applies.
        assert_eq!(
            check_url(&open, "http://u:p@127.0.0.1/").await,
            Err(TargetError::Credentials)
        );
        assert!(matches!(
            check_url(&open, "ftp://127.0.0.1/").await,
            Err(TargetError::NotHttpUrl(_))
        ));
    }

    #[tokio::test]
    async fn check_url_unresolvable() {
        let r = check_url(&deny(), "http://no-such-host.invalid/").await;
        assert_eq!(
            r,
            Err(TargetError::Unresolvable("no-such-host.invalid".into()))
        );
    }

    #[tokio::test]
    async fn check_url_reports_host_and_ip() {
        match check_url(&deny(), "http://0x7f.1/").await {
            Err(TargetError::Blocked { host, ip: addr }) => {
                assert_eq!(host, "127.0.0.1");
                assert_eq!(addr, ip("127.0.0.1"));
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn check_ip_target_literals() {
        let u = |s: &str| Url::parse(s).unwrap();
        assert!(check_ip_target(&deny(), &u("http://93.184.216.34/")).is_ok());
        assert!(check_ip_target(&deny(), &u("http://127.1/")).is_err());
        assert!(check_ip_target(&deny(), &u("http://[::ffff:127.0.0.1]/")).is_err());
        assert!(check_ip_target(&deny(), &u("http://169.254.169.254/")).is_err());
        // Domains are the resolver's job.
        assert!(check_ip_target(&deny(), &u("http://localhost/")).is_ok());
        let open = TargetPolicy {
            allow_private: true,
            allowed_cidrs: vec![],
        };
        assert!(check_ip_target(&open, &u("http://127.0.0.1/")).is_ok());
    }

    #[tokio::test]
    async fn resolver_blocks_localhost_unless_allowed() {
        let resolver = GuardedResolver::new(Arc::new(deny()));
        let err = match resolver.resolve("localhost".parse().unwrap()).await {
            Ok(_) => panic!("localhost must be blocked"),
            Err(e) => e.to_string(),
        };
        assert!(err.contains("blocked"), "{err}");
        assert!(err.contains("non-public"), "{err}");

        let open = GuardedResolver::new(Arc::new(TargetPolicy {
            allow_private: true,
            allowed_cidrs: vec![],
        }));
        let addrs: Vec<SocketAddr> = match open.resolve("localhost".parse().unwrap()).await {
            Ok(a) => a.collect(),
            Err(e) => panic!("allow_private should resolve localhost: {e}"),
        };
        assert!(!addrs.is_empty());
        assert!(addrs.iter().all(|a| a.ip().is_loopback()));

        let listed = GuardedResolver::new(Arc::new(TargetPolicy {
            allow_private: false,
            allowed_cidrs: nets("127.0.0.0/8"),
        }));
        let addrs: Vec<SocketAddr> = match listed.resolve("localhost".parse().unwrap()).await {
            Ok(a) => a.collect(),
            Err(e) => panic!("allow-listed loopback should resolve: {e}"),
        };
        assert!(addrs
            .iter()
            .all(|a| a.ip().is_ipv4() && a.ip().is_loopback()));
    }

    #[tokio::test]
    async fn resolver_unresolvable_errors() {
        let resolver = GuardedResolver::new(Arc::new(deny()));
        assert!(resolver
            .resolve("no-such-host.invalid".parse().unwrap())
            .await
            .is_err());
    }
}
