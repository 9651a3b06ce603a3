//! Network interface throughput from `/proc/net/dev`, link speed from `/sys/class/net`.

use vigie_domain::telemetry::{NetworkSample, bounds};

use super::{Machine, clip, per_second};

/// The cumulative counters of one interface.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct InterfaceCounters {
    name: String,
    rx_bytes: u64,
    rx_errors: u64,
    tx_bytes: u64,
    tx_errors: u64,
}

/// Parses `/proc/net/dev` (two header lines, then
/// `name: rx_bytes packets errs drop fifo frame compressed multicast tx_bytes packets errs …`),
/// skipping the loopback interface.
pub(super) fn parse_net_dev(text: &str) -> Vec<InterfaceCounters> {
    text.lines()
        .filter_map(|line| {
            let (name, counters) = line.split_once(':')?;
            let name = name.trim();
            let fields: Vec<u64> = counters
                .split_whitespace()
                .map(str::parse)
                .collect::<Result<_, _>>()
                .ok()?;
            Some(InterfaceCounters {
                name: name.to_owned(),
                rx_bytes: *fields.first()?,
                rx_errors: *fields.get(2)?,
                tx_bytes: *fields.get(8)?,
                tx_errors: *fields.get(10)?,
            })
        })
        .filter(|i| i.name != "lo")
        .take(bounds::MAX_ITEMS)
        .collect()
}

/// Negotiated speed in Mb/s; virtual and down links say -1 or refuse the read.
pub(super) fn link_speed(m: &Machine, interface: &str) -> Option<u64> {
    let text = m.read(format!("sys/class/net/{interface}/speed"))?;
    text.trim().parse().ok().filter(|&mbps| mbps > 0)
}

/// Rates between two readings `secs` apart; error counters are cumulative. An interface seen
/// for the first time, or whose counters were reset, reports zero until the next sample.
pub(super) fn rates(
    before: &[InterfaceCounters],
    after: &[InterfaceCounters],
    secs: f64,
    link_speed: impl Fn(&str) -> Option<u64>,
) -> Vec<NetworkSample> {
    after
        .iter()
        .map(|now| {
            let then = before.iter().find(|i| i.name == now.name).unwrap_or(now);
            NetworkSample {
                interface: clip(&now.name),
                rx_bytes_per_s: per_second(now.rx_bytes.saturating_sub(then.rx_bytes), secs),
                tx_bytes_per_s: per_second(now.tx_bytes.saturating_sub(then.tx_bytes), secs),
                rx_errors: now.rx_errors,
                tx_errors: now.tx_errors,
                link_speed_mbps: link_speed(&now.name),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const NET_DEV: &str = "\
Inter-|   Receive                                                |  Transmit
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
    lo:    3193      29    0    0    0     0          0         0     3193      29    0    0    0     0       0          0
  eth0: 290405932   14923    4    0    0     0          0         0   871697    8840    7    0    0     0       0          0
wlan0:1000 10 0 0 0 0 0 0 2000 20 0 0 0 0 0 0
  bad0: 12 x 0
";

    #[test]
    fn parses_interfaces_without_loopback() {
        let all = parse_net_dev(NET_DEV);
        let names: Vec<_> = all.iter().map(|i| i.name.as_str()).collect();
        assert_eq!(names, ["eth0", "wlan0"]);
        assert_eq!((all[0].rx_bytes, all[0].rx_errors), (290_405_932, 4));
        assert_eq!((all[0].tx_bytes, all[0].tx_errors), (871_697, 7));
    }

    #[test]
    fn rates_over_the_interval() {
        let before = parse_net_dev("eth0: 1000 0 0 0 0 0 0 0 5000 0 0 0 0 0 0 0\n");
        let after = parse_net_dev(
            "eth0: 3000 0 1 0 0 0 0 0 4000 0 2 0 0 0 0 0\nveth1: 9 0 0 0 0 0 0 0 9 0 0 0 0 0 0 0\n",
        );
        let speed = |i: &str| (i == "eth0").then_some(1000);
        let out = rates(&before, &after, 2.0, speed);
        let eth0 = &out[0];
        assert_eq!((eth0.rx_bytes_per_s, eth0.tx_bytes_per_s), (1000.0, 0.0));
        assert_eq!(
            (eth0.rx_errors, eth0.tx_errors, eth0.link_speed_mbps),
            (1, 2, Some(1000))
        );
        assert_eq!((out[1].rx_bytes_per_s, out[1].link_speed_mbps), (0.0, None));
        assert_eq!(rates(&before, &after, 0.0, speed)[0].rx_bytes_per_s, 0.0);
    }
}
