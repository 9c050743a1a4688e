//! Plain Zenoh ping-pong between two processes: the round trip a lock-step exchange
//! cannot beat, measured without evospikenet's crypto, codec or Python.
//!
//! Both sides wait for a message as the brain's spike exchange does: they poll for
//! [`POLL`] (yielding the core) and then sleep, so the round trip is not inflated by
//! wake-ups the exchange does not pay. The ping side also times the same count of round
//! trips with sleeping waits only (`sleeping_p50_s`), for comparison.
//!
//! ```text
//! zenoh_ping pong                     listen on tcp/127.0.0.1:0, print the locator, echo
//! zenoh_ping ping <locator> <count>   connect, time <count> round trips, print JSON
//! ```
//!
//! Loopback only, multicast scouting off. `bench/engine_bench.py` runs both.

use std::io::Write;
use std::time::{Duration, Instant};

use zenoh::handlers::FifoChannelHandler;
use zenoh::pubsub::Subscriber;
use zenoh::sample::Sample;
use zenoh::{Config, Wait};

/// How long a wait polls before it sleeps (as `POLL_BEFORE_SLEEP` in the exchange).
const POLL: Duration = Duration::from_micros(200);

type Sub = Subscriber<FifoChannelHandler<Sample>>;

/// The next sample within `timeout`, polling for up to `poll` of it first.
fn receive(sub: &Sub, poll: Duration, timeout: Duration) -> zenoh::Result<Option<Sample>> {
    let start = Instant::now();
    while start.elapsed() < poll.min(timeout) {
        if let Some(s) = sub.try_recv()? {
            return Ok(Some(s));
        }
        std::thread::yield_now();
    }
    sub.recv_timeout(timeout.saturating_sub(start.elapsed()))
}

fn config(listen: &[&str], connect: &[&str]) -> Config {
    let mut c = Config::default();
    let list = |v: &[&str]| serde_json::to_string(v).expect("strings serialize");
    for (key, value) in [
        ("mode", "\"peer\"".to_string()),
        ("scouting/multicast/enabled", "false".to_string()),
        ("listen/endpoints", list(listen)),
        ("connect/endpoints", list(connect)),
    ] {
        c.insert_json5(key, &value).expect("valid zenoh option");
    }
    c
}

fn pong() -> zenoh::Result<()> {
    let session = zenoh::open(config(&["tcp/127.0.0.1:0"], &[])).wait()?;
    let publisher = session.declare_publisher("bench/pong").wait()?;
    let sub = session.declare_subscriber("bench/ping").wait()?;
    let locator = session.info().locators().wait()[0].to_string();
    println!("{locator}");
    std::io::stdout().flush().ok();
    loop {
        if let Some(sample) = receive(&sub, POLL, Duration::from_secs(3600))? {
            publisher.put(sample.payload().clone()).wait()?;
        }
    }
}

fn ping(locator: &str, count: usize) -> zenoh::Result<()> {
    let session = zenoh::open(config(&[], &[locator])).wait()?;
    let publisher = session.declare_publisher("bench/ping").wait()?;
    let sub = session.declare_subscriber("bench/pong").wait()?;
    let payload = vec![0u8; 16];
    // Until the first echo comes back, the declarations are still propagating.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        publisher.put(payload.clone()).wait()?;
        if sub.recv_timeout(Duration::from_millis(200))?.is_some() {
            break;
        }
        if Instant::now() > deadline {
            return Err("no echo within 30 s".into());
        }
    }
    while sub.try_recv()?.is_some() {}
    let round_trips = |poll: Duration| -> zenoh::Result<Vec<f64>> {
        let mut rtt = Vec::with_capacity(count);
        for _ in 0..count {
            let t0 = Instant::now();
            publisher.put(payload.clone()).wait()?;
            if receive(&sub, poll, Duration::from_secs(1))?.is_some() {
                rtt.push(t0.elapsed().as_secs_f64());
            }
        }
        rtt.sort_by(f64::total_cmp);
        Ok(rtt)
    };
    let rtt = round_trips(POLL)?;
    let sleeping = round_trips(Duration::ZERO)?;
    let p = |rtt: &[f64], q: f64| rtt[((rtt.len() - 1) as f64 * q) as usize];
    println!(
        "{{\"samples\": {}, \"p50_s\": {}, \"p10_s\": {}, \"p90_s\": {}, \"sleeping_p50_s\": {}}}",
        rtt.len(),
        p(&rtt, 0.5),
        p(&rtt, 0.1),
        p(&rtt, 0.9),
        p(&sleeping, 0.5)
    );
    Ok(())
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let result = match args.get(1).map(String::as_str) {
        Some("pong") => pong(),
        Some("ping") if args.len() == 4 => match args[3].parse() {
            Ok(count) => ping(&args[2], count),
            Err(_) => Err("count: expected a positive integer".into()),
        },
        _ => Err("usage: zenoh_ping pong | zenoh_ping ping <locator> <count>".into()),
    };
    if let Err(e) = result {
        eprintln!("zenoh_ping: {e}");
        std::process::exit(1);
    }
}
