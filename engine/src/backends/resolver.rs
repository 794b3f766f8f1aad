//! Lookups of records that live outside our zones: a customer's verification
//! TXT record on their own domain, or where their domain points.
//!
//! The answers decide whether a domain is verified, so they must be fresh: the
//! resolver keeps no cache of its own, and a record published a moment ago is
//! seen by the next lookup (as far as the servers it asks allow).

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use hickory_resolver::TokioResolver;
use hickory_resolver::config::{
    ConnectionConfig, LookupIpStrategy, NameServerConfig, ResolveHosts, ResolverConfig, ResolverOpts,
};
use hickory_resolver::net::NetError;
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::proto::rr::RData;

use super::dns::DnsError;

/// How `DnsResolver` names the system's configured nameservers in errors.
const SYSTEM_NAMESERVERS: &str = "the system's nameservers";

/// How long a query to a named nameserver may go unanswered.
const NAMED_SERVER_TIMEOUT: Duration = Duration::from_secs(2);

/// The port a nameserver address without one is asked on.
const DNS_PORT: u16 = 53;

/// A DNS resolver without a cache, asking either one given nameserver or the
/// system's configured ones. Built at its first lookup: most runs (every plan
/// without a custom domain) never look anything up, and hickory's set-up
/// (the system's configuration, the hosts file) is then memory for nothing.
pub struct DnsResolver {
    /// The one nameserver to ask, or `None` for the system's.
    address: Option<SocketAddr>,
    resolver: tokio::sync::OnceCell<TokioResolver>,
    /// The nameserver as given, or a description of the system's, for errors.
    nameserver: String,
}

impl std::fmt::Debug for DnsResolver {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.debug_struct("DnsResolver").field("nameserver", &self.nameserver).finish_non_exhaustive()
    }
}

impl DnsResolver {
    /// `Some("127.0.0.1:5353")` asks exactly that server, over UDP and TCP, and
    /// never the hosts file (tests point this at their own PowerDNS); a bare
    /// address means port 53. `None` uses the system's configuration
    /// (`/etc/resolv.conf`, read at the first lookup), as production does to
    /// see customers' records. A nameserver that is not an address is refused here.
    pub fn new(nameserver: Option<&str>) -> Result<DnsResolver, DnsError> {
        let (address, nameserver) = match nameserver {
            Some(nameserver) => {
                let address = nameserver_address(nameserver).map_err(|error| DnsError::ResolverSetup {
                    nameserver: nameserver.to_owned(),
                    source: error.into(),
                })?;
                (Some(address), nameserver.to_owned())
            }
            None => (None, SYSTEM_NAMESERVERS.to_owned()),
        };
        Ok(DnsResolver { address, resolver: tokio::sync::OnceCell::new(), nameserver })
    }

    /// The resolver, built at the first call.
    async fn resolver(&self) -> Result<&TokioResolver, DnsError> {
        self.resolver.get_or_try_init(|| async { self.build() }).await
    }

    fn build(&self) -> Result<TokioResolver, DnsError> {
        let setup_error = |source: Box<dyn std::error::Error + Send + Sync>| DnsError::ResolverSetup {
            nameserver: self.nameserver.clone(),
            source,
        };
        let mut builder = match self.address {
            Some(address) => {
                let config = ResolverConfig::from_name_servers(vec![nameserver_config(address)]);
                let mut builder = TokioResolver::builder_with_config(config, TokioRuntimeProvider::default());
                let options = builder.options_mut();
                options.use_hosts_file = ResolveHosts::Never;
                // One server we name is close by: a short wait, then one more try, is
                // enough, and a dead server fails in seconds rather than in 15.
                options.timeout = NAMED_SERVER_TIMEOUT;
                options.attempts = 1;
                builder
            }
            None => TokioResolver::builder_tokio().map_err(|error| setup_error(Box::new(error)))?,
        };
        without_cache(builder.options_mut());
        builder.build().map_err(|error| setup_error(Box::new(error)))
    }

    /// The TXT records of `name`, each record's strings joined (a long value
    /// is split into 255-byte strings on the wire) and without quotes. A name
    /// that does not exist or has no TXT records gives an empty list: "not
    /// published yet" is an answer, not a failure.
    pub async fn txt(&self, name: &str) -> Result<Vec<String>, DnsError> {
        let name = fully_qualified(name);
        match self.resolver().await?.txt_lookup(name.as_str()).await {
            Ok(lookup) => Ok(lookup
                .answers()
                .iter()
                .filter_map(|record| match &record.data {
                    RData::TXT(txt) => Some(txt.txt_data.iter().map(|part| String::from_utf8_lossy(part)).collect()),
                    _ => None,
                })
                .collect()),
            Err(error) => self.no_records_or_error(&name, error),
        }
    }

    /// The IPv4 and IPv6 addresses of `name`, following CNAMEs; empty when the
    /// name does not exist or has no addresses.
    pub async fn addresses(&self, name: &str) -> Result<Vec<IpAddr>, DnsError> {
        let name = fully_qualified(name);
        match self.resolver().await?.lookup_ip(name.as_str()).await {
            Ok(lookup) => Ok(lookup.iter().collect()),
            Err(error) => self.no_records_or_error(&name, error),
        }
    }

    fn no_records_or_error<T>(&self, name: &str, error: NetError) -> Result<Vec<T>, DnsError> {
        if error.is_no_records_found() {
            return Ok(Vec::new());
        }
        Err(DnsError::Lookup { name: name.to_owned(), nameserver: self.nameserver.clone(), source: Box::new(error) })
    }
}

/// `127.0.0.1:5353`, or a bare address on port 53.
fn nameserver_address(nameserver: &str) -> Result<SocketAddr, std::net::AddrParseError> {
    nameserver.parse::<SocketAddr>().or_else(|_| nameserver.parse::<IpAddr>().map(|ip| SocketAddr::new(ip, DNS_PORT)))
}

fn nameserver_config(address: SocketAddr) -> NameServerConfig {
    let connections = [ConnectionConfig::udp(), ConnectionConfig::tcp()]
        .into_iter()
        .map(|mut connection| {
            connection.port = address.port();
            connection
        })
        .collect();
    NameServerConfig::new(address.ip(), true, connections)
}

/// Turns hickory's response cache off: no entries kept, and whatever slips in
/// expires at once. Both IP families are asked for, so `addresses` sees AAAA
/// records even where A records exist.
fn without_cache(options: &mut ResolverOpts) {
    options.cache_size = 0;
    options.positive_max_ttl = Some(Duration::ZERO);
    options.negative_max_ttl = Some(Duration::ZERO);
    options.ip_strategy = LookupIpStrategy::Ipv4AndIpv6;
}

/// A name with its trailing dot, so that the system's search domains are never appended.
fn fully_qualified(name: &str) -> String {
    if name.ends_with('.') { name.to_owned() } else { format!("{name}.") }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nameservers_are_an_address_with_an_optional_port() {
        let cases = [
            ("127.0.0.1:5353", Some("127.0.0.1:5353")),
            ("127.0.0.1", Some("127.0.0.1:53")),
            ("[::1]:5353", Some("[::1]:5353")),
            ("::1", Some("[::1]:53")),
            ("localhost:53", None),
            ("", None),
        ];
        for (input, expected) in cases {
            let parsed = nameserver_address(input).ok().map(|address| address.to_string());
            assert_eq!(parsed.as_deref(), expected, "nameserver {input:?}");
        }
    }

    #[tokio::test]
    async fn an_unparsable_nameserver_is_a_setup_error_naming_it() {
        let error = DnsResolver::new(Some("dns.example:53")).unwrap_err();
        assert!(matches!(&error, DnsError::ResolverSetup { nameserver, .. } if nameserver == "dns.example:53"));
        assert!(!error.is_retryable());
    }
}
