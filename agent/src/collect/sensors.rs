//! Temperatures from `/sys/class/hwmon` and `/sys/class/thermal`.

use vigie_domain::telemetry::{TemperatureSample, bounds};

use super::{Machine, clip};

/// Reads a sysfs temperature in millidegrees; values a real sensor cannot show are refused.
fn millidegrees(text: &str) -> Option<f64> {
    let celsius = text.trim().parse::<i64>().ok()? as f64 / 1000.0;
    (-100.0..=250.0).contains(&celsius).then_some(celsius)
}

/// Every readable sensor: hwmon chips first (`coretemp/Package id 0`), then thermal zones
/// (`thermal_zone0/x86_pkg_temp`).
pub(super) fn collect(m: &Machine) -> Vec<TemperatureSample> {
    let mut out = Vec::new();
    for n in m.numbered("sys/class/hwmon", "hwmon", "") {
        let dir = format!("sys/class/hwmon/hwmon{n}");
        let chip = m
            .read(format!("{dir}/name"))
            .map_or(format!("hwmon{n}"), |c| c.trim().to_owned());
        for index in m.numbered(&dir, "temp", "_input") {
            let file = |suffix: &str| m.read(format!("{dir}/temp{index}_{suffix}"));
            let Some(celsius) = file("input").as_deref().and_then(millidegrees) else {
                continue;
            };
            let label = file("label").map_or(format!("temp{index}"), |l| l.trim().to_owned());
            let critical_celsius = file("crit").as_deref().and_then(millidegrees);
            out.push(TemperatureSample {
                sensor: format!("{chip}/{label}"),
                celsius,
                critical_celsius,
            });
        }
    }
    for n in m.numbered("sys/class/thermal", "thermal_zone", "") {
        let dir = format!("sys/class/thermal/thermal_zone{n}");
        let Some(celsius) = m
            .read(format!("{dir}/temp"))
            .as_deref()
            .and_then(millidegrees)
        else {
            continue;
        };
        let kind = m
            .read(format!("{dir}/type"))
            .map_or("unknown".to_owned(), |t| t.trim().to_owned());
        out.push(TemperatureSample {
            sensor: format!("thermal_zone{n}/{kind}"),
            celsius,
            critical_celsius: None,
        });
    }
    // Two chips of one kind (two NVMe drives) give the same names: number the repeats.
    let mut seen: Vec<String> = Vec::new();
    for t in &mut out {
        let repeats = seen.iter().filter(|s| **s == t.sensor).count();
        seen.push(t.sensor.clone());
        if repeats > 0 {
            t.sensor = format!("{} #{}", t.sensor, repeats + 1);
        }
        t.sensor = clip(&t.sensor);
    }
    out.truncate(bounds::MAX_ITEMS);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    #[test]
    fn millidegrees_in_a_sane_range() {
        assert_eq!(millidegrees("48500\n"), Some(48.5));
        assert_eq!(millidegrees("-5000"), Some(-5.0));
        assert_eq!(millidegrees("-273150"), None);
        assert_eq!(millidegrees("255000"), None);
        assert_eq!(millidegrees("N/A"), None);
    }

    #[test]
    fn hwmon_chips_and_thermal_zones() {
        let root = crate::collect::tests::scratch_dir("sensors");
        let put = |path: &str, text: &str| {
            let path = root.join(path);
            fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
            fs::write(path, text).expect("write");
        };
        for hwmon in ["hwmon2", "hwmon10"] {
            put(&format!("sys/class/hwmon/{hwmon}/name"), "nvme\n");
            put(&format!("sys/class/hwmon/{hwmon}/temp1_input"), "38850\n");
            put(
                &format!("sys/class/hwmon/{hwmon}/temp1_label"),
                "Composite\n",
            );
        }
        put("sys/class/hwmon/hwmon0/temp1_input", "45000\n");
        put("sys/class/hwmon/hwmon0/temp1_crit", "999999\n");
        put("sys/class/hwmon/hwmon0/temp2_input", "not a number\n");
        put("sys/class/thermal/thermal_zone0/temp", "41000\n");
        put("sys/class/thermal/cooling_device0/type", "Processor\n");
        let m = Machine { root: root.clone() };
        let sensors: Vec<_> = collect(&m)
            .into_iter()
            .map(|t| (t.sensor, t.celsius, t.critical_celsius))
            .collect();
        assert_eq!(
            sensors,
            [
                ("hwmon0/temp1".to_owned(), 45.0, None),
                ("nvme/Composite".to_owned(), 38.85, None),
                ("nvme/Composite #2".to_owned(), 38.85, None),
                ("thermal_zone0/unknown".to_owned(), 41.0, None),
            ]
        );
        fs::remove_dir_all(&root).ok();
    }
}
