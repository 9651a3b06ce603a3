//! Mounted real filesystems from `/proc/self/mountinfo`, sized with `statvfs`.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use vigie_domain::telemetry::{FilesystemSample, bounds};

use super::{Machine, fits, percent};

/// Kernel and virtual filesystems that hold no user data.
#[rustfmt::skip]
const PSEUDO: &[&str] = &[
    "autofs", "binfmt_misc", "bpf", "cgroup", "cgroup2", "configfs", "debugfs", "devpts",
    "devtmpfs", "efivarfs", "fusectl", "hugetlbfs", "mqueue", "nsfs", "proc", "pstore", "ramfs",
    "rootfs", "rpc_pipefs", "securityfs", "selinuxfs", "squashfs", "sysfs", "tmpfs", "tracefs",
];

/// Network filesystems: `statvfs` blocks on one whose server is gone, stalling the agent.
#[rustfmt::skip]
const NETWORK: &[&str] = &["9p", "afs", "ceph", "cifs", "glusterfs", "nfs", "nfs4", "smb3", "smbfs"];

/// One line of `mountinfo`.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Mount {
    /// `major:minor` of the filesystem: the same for every mount of it.
    device_id: String,
    mount: String,
    fs_type: String,
    source: String,
}

/// Parses `mountinfo`: `36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw`.
pub(super) fn parse_mountinfo(text: &str) -> Vec<Mount> {
    text.lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let separator = fields.iter().skip(6).position(|&f| f == "-")? + 6;
            Some(Mount {
                device_id: (*fields.get(2)?).to_owned(),
                mount: unescape(fields.get(4)?),
                fs_type: (*fields.get(separator + 1)?).to_owned(),
                source: unescape(fields.get(separator + 2)?),
            })
        })
        .collect()
}

/// Undoes the kernel's octal escapes (`\040` is a space).
fn unescape(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&byte) = bytes.get(i) {
        let octal = |d: &u8| (b'0'..=b'7').contains(d);
        match bytes.get(i..i + 4) {
            Some(&[b'\\', a @ b'0'..=b'3', b, c]) if octal(&b) && octal(&c) => {
                out.push((a - b'0') * 64 + (b - b'0') * 8 + (c - b'0'));
                i += 4;
            }
            _ => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Whether a mount holds a filesystem worth reporting. A container's root is an overlay, so
/// an overlay counts only at `/`.
fn is_real(m: &Mount) -> bool {
    let t = m.fs_type.as_str();
    if t == "overlay" {
        return m.mount == "/";
    }
    !PSEUDO.contains(&t) && !NETWORK.contains(&t) && !t.starts_with("fuse.") && t != "fuse"
}

/// The real mounts, one per filesystem (the shortest mount path wins), sorted by path.
pub(super) fn real_mounts(mounts: Vec<Mount>) -> Vec<Mount> {
    let mut real: Vec<Mount> = mounts.into_iter().filter(is_real).collect();
    real.sort_by(|a, b| (a.mount.len(), &a.mount).cmp(&(b.mount.len(), &b.mount)));
    let mut kept: Vec<Mount> = Vec::new();
    for m in real {
        if !kept.iter().any(|k| k.device_id == m.device_id) {
            kept.push(m);
        }
    }
    kept.sort_by(|a, b| a.mount.cmp(&b.mount));
    kept
}

/// Every real filesystem with its sizes; a mount that cannot be measured is skipped.
pub(super) fn collect(m: &Machine) -> Vec<FilesystemSample> {
    let Some(text) = m.read("proc/self/mountinfo") else {
        return Vec::new();
    };
    real_mounts(parse_mountinfo(&text))
        .into_iter()
        .filter(|mount| fits(&mount.mount) && fits(&mount.fs_type) && fits(&mount.source))
        .filter_map(|mount| {
            let path = m.path(mount.mount.trim_start_matches('/'));
            // Files bind-mounted into containers (`/etc/hosts`) are not filesystems.
            if !path.is_dir() {
                return None;
            }
            sized(mount, statvfs(&path)?)
        })
        .take(bounds::MAX_ITEMS)
        .collect()
}

/// What `statvfs` says, in `u64`s.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Usage {
    blocks: u64,
    blocks_free: u64,
    blocks_available: u64,
    fragment_size: u64,
    files: u64,
    files_free: u64,
}

/// Sizes as `df` shows them: used% = used / (used + available to unprivileged users).
fn sized(mount: Mount, u: Usage) -> Option<FilesystemSample> {
    if u.blocks == 0 {
        return None;
    }
    let used_blocks = u.blocks.saturating_sub(u.blocks_free);
    let used_pct = percent(
        used_blocks as f64,
        used_blocks as f64 + u.blocks_available as f64,
    );
    let inodes_used = u.files.saturating_sub(u.files_free);
    Some(FilesystemSample {
        mount: mount.mount,
        fs_type: mount.fs_type,
        device: mount.source,
        total_bytes: u.blocks.saturating_mul(u.fragment_size),
        used_bytes: used_blocks.saturating_mul(u.fragment_size),
        available_bytes: u.blocks_available.saturating_mul(u.fragment_size),
        used_pct,
        inodes_used_pct: (u.files > 0).then(|| percent(inodes_used as f64, u.files as f64)),
    })
}

// The field types of `struct statvfs` differ between targets (u32 or u64); the casts widen.
#[allow(unsafe_code, clippy::unnecessary_cast)]
fn statvfs(path: &Path) -> Option<Usage> {
    let c_path = CString::new(path.as_os_str().as_bytes()).ok()?;
    let mut out = std::mem::MaybeUninit::<libc::statvfs>::uninit();
    // SAFETY: `c_path` is a NUL-terminated string alive for the whole call and `out` points to
    // writable memory sized for a `statvfs`; the kernel fills it completely when the call
    // returns 0, and only then is it read.
    let s = unsafe {
        if libc::statvfs(c_path.as_ptr(), out.as_mut_ptr()) != 0 {
            return None;
        }
        out.assume_init()
    };
    Some(Usage {
        blocks: s.f_blocks as u64,
        blocks_free: s.f_bfree as u64,
        blocks_available: s.f_bavail as u64,
        fragment_size: s.f_frsize as u64,
        files: s.f_files as u64,
        files_free: s.f_ffree as u64,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const MOUNTINFO: &str = "\
22 27 0:21 / /proc rw,relatime - proc proc rw
24 27 0:6 / /dev rw,relatime - devtmpfs devtmpfs rw,size=123k
25 24 0:23 / /dev/shm rw,relatime - tmpfs tmpfs rw
27 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda1 rw,discard
28 27 8:17 / /mnt/My\\040Backups rw,relatime shared:2 master:3 - xfs /dev/sdb1 rw
29 27 254:0 /srv /srv/bind rw,relatime - ext4 /dev/vda1 rw
30 27 0:30 / /var/lib/docker/overlay2/abc/merged rw - overlay overlay rw
31 27 7:0 / /snap/core/1 ro - squashfs /dev/loop0 ro
32 27 0:40 / /run/user/1000/gvfs rw - fuse.gvfsd-fuse gvfsd-fuse rw
33 27 0:41 / /mnt/nas rw - nfs4 nas:/export rw
34 27 0:42 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw
35 27 0:43 / /boot/efi rw - vfat /dev/sda1 rw
not a mountinfo line
36 27 0:44 / /broken rw no separator here
";

    #[test]
    fn keeps_real_filesystems_once_with_unescaped_paths() {
        let mounts = real_mounts(parse_mountinfo(MOUNTINFO));
        let paths: Vec<_> = mounts.iter().map(|m| m.mount.as_str()).collect();
        assert_eq!(paths, ["/", "/boot/efi", "/mnt/My Backups"]);
        assert_eq!(
            (mounts[0].fs_type.as_str(), mounts[0].source.as_str()),
            ("ext4", "/dev/vda1")
        );
    }

    #[test]
    fn an_overlay_counts_only_as_a_container_root() {
        let text = "100 1 0:50 / / rw - overlay overlay rw,lowerdir=/a\n";
        let mounts = real_mounts(parse_mountinfo(text));
        assert_eq!(mounts.len(), 1);
        assert_eq!(mounts[0].fs_type, "overlay");
    }

    #[test]
    fn octal_escapes() {
        assert_eq!(unescape("/a\\040b\\011c\\134d"), "/a b\tc\\d");
        assert_eq!(unescape("/odd\\04"), "/odd\\04");
        assert_eq!(unescape("/odd\\9999\\777"), "/odd\\9999\\777");
        assert_eq!(unescape("/caf\\303\\251"), "/café");
    }

    #[test]
    fn sizes_as_df_shows_them() {
        let mount = parse_mountinfo(MOUNTINFO).remove(3);
        let usage = Usage {
            blocks: 1000,
            blocks_free: 300,
            blocks_available: 100,
            fragment_size: 4096,
            files: 200,
            files_free: 150,
        };
        let fs = sized(mount.clone(), usage).expect("sized");
        assert_eq!(
            (fs.total_bytes, fs.used_bytes, fs.available_bytes),
            (4_096_000, 2_867_200, 409_600)
        );
        assert_eq!((fs.used_pct, fs.inodes_used_pct), (87.5, Some(25.0)));
        let no_inodes = sized(
            mount.clone(),
            Usage {
                files: 0,
                files_free: 0,
                ..usage
            },
        );
        assert_eq!(no_inodes.expect("sized").inodes_used_pct, None);
        assert_eq!(sized(mount, Usage { blocks: 0, ..usage }), None);
    }

    #[test]
    fn statvfs_measures_a_real_directory() {
        let usage = statvfs(&std::env::temp_dir()).expect("statvfs on the temp dir");
        assert!(usage.blocks > 0 && usage.fragment_size > 0);
        assert_eq!(statvfs(Path::new("/no/such/dir/here")), None);
    }
}
