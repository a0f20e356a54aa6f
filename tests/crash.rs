//! Crash safety: `plcvault collect` killed with SIGKILL at random moments never leaves a
//! damaged vault or a half snapshot, and the next normal collect succeeds.

mod common;

use std::time::{Duration, Instant};

use common::{Site, noise};

fn seed() -> u64 {
    std::env::var("PLCVAULT_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        })
}

#[test]
fn sigkill_at_random_moments_leaves_the_vault_consistent() {
    let seed = seed();
    eprintln!("crash test seed {seed} (set PLCVAULT_CRASH_SEED to repeat)");
    let mut rng = seed | 1;
    let mut next = move |n: u64| {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng % n.max(1)
    };
    let s = Site::new();
    for i in 0..12 {
        s.write(
            &format!("plant/prog/FB{i}.scl"),
            format!("FUNCTION_BLOCK FB{i}\n").repeat(2000).as_bytes(),
        );
    }
    s.write("plant/hmi/panel.img", &noise(12 * 1024 * 1024, 1));

    // How long an undisturbed collect takes here, to spread the kills across it.
    let t0 = Instant::now();
    assert_eq!(s.run(&["collect", "--all"]).code, 0);
    let full = t0.elapsed().as_micros() as u64;

    // The kill window adapts to how long runs take now (a loaded CI machine is slower,
    // later runs store less): a kill that came too late shrinks it, one that hit widens it.
    let mut window = full * 12 / 10 + 1;
    let mut killed_mid_run = 0;
    let mut round = 0u64;
    while round < 60 || (killed_mid_run < 30 && round < 200) {
        round += 1;
        // New content every round so that every run has packs, a manifest and an entry
        // to write.
        let mut img = noise(12 * 1024 * 1024, 1);
        let at = next(img.len() as u64 - 64) as usize;
        img[at..at + 64].copy_from_slice(&noise(64, round + 100));
        s.write("plant/hmi/panel.img", &img);
        s.write(
            &format!("plant/recipes/r{round}.csv"),
            format!("fill;{round}\n").as_bytes(),
        );

        let mut child = s
            .command(&["-q", "collect", "--all"])
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_micros(next(window)));
        if child.try_wait().unwrap().is_none() {
            killed_mid_run += 1;
            window = window * 11 / 10 + 1;
        } else {
            window = (window * 2 / 3).max(1000);
        }
        let _ = child.kill();
        child.wait().unwrap();

        let r = s.run(&["--json", "verify", "--read-data"]);
        assert_eq!(
            r.code, 0,
            "round {round} (seed {seed}): vault damaged after SIGKILL:\n{}\n{}",
            r.stdout, r.stderr
        );
        // Every snapshot the log shows is whole: it restores and matches its hashes.
        let list = s.run(&["--json", "snapshots"]).records("snapshot");
        let last = list.last().unwrap();
        assert_eq!(last["complete"], true);
        if round.is_multiple_of(15) {
            let out = s.path(&format!("restore-{round}"));
            let r = s.run(&["restore", "line1", "--to", out.to_str().unwrap()]);
            assert_eq!(r.code, 0, "round {round}: {}", r.stderr);
        }
    }
    assert!(
        killed_mid_run >= 30,
        "only {killed_mid_run} of {round} kills hit a running collect"
    );

    let r = s.run(&["--json", "collect", "--all"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let r = s.run(&["verify", "--read-data"]);
    assert_eq!(r.code, 0, "{}", r.stdout);
}
