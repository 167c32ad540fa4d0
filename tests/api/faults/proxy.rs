//! A small TCP fault proxy for the tests: sits between the app and a server it does not
//! control (Redis, Postgres) and misbehaves on demand, switchable at runtime.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// What the proxy does to the bytes it carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Forward everything as it comes.
    Pass,
    /// Every chunk (either direction) waits this long before it is forwarded.
    Latency(Duration),
    /// Accept and read, forward nothing and answer nothing while the mode lasts (new
    /// connections are accepted but not connected upstream); what was held is forwarded once
    /// the mode changes, like a frozen server that thaws.
    Blackhole,
    /// Each connection is closed after this many more bytes from the server (counted from the
    /// moment the mode was set): replies are cut mid-way.
    CutAfter(u64),
    /// Roughly one reply chunk in `one_in` gets one byte flipped.
    Corrupt { one_in: u32 },
    /// Nothing is forwarded: every chunk from the client is answered with a well-formed but
    /// nonsensical reply (a fake server). Setting or leaving this mode resets connections.
    Nonsense,
}

#[derive(Debug, Clone, Copy)]
struct State {
    generation: u64,
    fault: Fault,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Direction {
    ToServer,
    ToClient,
}

pub struct FaultProxy {
    pub port: u16,
    mode: watch::Sender<State>,
    reset: watch::Sender<u64>,
    accept: JoinHandle<()>,
}

impl FaultProxy {
    /// Listens on a free loopback port and forwards to `upstream`.
    pub async fn start(upstream: SocketAddr) -> FaultProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (mode, _) = watch::channel(State {
            generation: 0,
            fault: Fault::Pass,
        });
        let (reset, _) = watch::channel(0u64);
        let (mode_tx, reset_tx) = (mode.clone(), reset.clone());
        let accept = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let (m, r) = (mode_tx.subscribe(), reset_tx.subscribe());
                tokio::spawn(connection(client, upstream, m, r));
            }
        });
        FaultProxy {
            port,
            mode,
            reset,
            accept,
        }
    }

    pub fn url(&self, scheme_and_auth: &str) -> String {
        format!("{scheme_and_auth}127.0.0.1:{}", self.port)
    }

    pub fn set(&self, fault: Fault) {
        let before = self.mode.borrow().fault;
        self.mode.send_modify(|s| {
            s.generation += 1;
            s.fault = fault;
        });
        if (before == Fault::Nonsense) != (fault == Fault::Nonsense) {
            self.reset_all();
        }
    }

    /// Close every open connection at once (RST), as a crashed middlebox would.
    pub fn reset_all(&self) {
        self.reset.send_modify(|n| *n += 1);
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.accept.abort();
        self.reset_all();
    }
}

async fn connection(
    client: TcpStream,
    upstream: SocketAddr,
    mut mode: watch::Receiver<State>,
    mut reset: watch::Receiver<u64>,
) {
    let _ = client.set_nodelay(true);
    let _ = client.set_zero_linger();
    let work = async {
        while mode.borrow().fault == Fault::Blackhole {
            if mode.changed().await.is_err() {
                return;
            }
        }
        if mode.borrow().fault == Fault::Nonsense {
            fake_server(client).await;
            return;
        }
        let Ok(server) = TcpStream::connect(upstream).await else {
            return;
        };
        let _ = server.set_nodelay(true);
        let _ = server.set_zero_linger();
        let (client_read, client_write) = client.into_split();
        let (server_read, server_write) = server.into_split();
        tokio::select! {
            _ = pump(client_read, server_write, Direction::ToServer, mode.clone()) => {}
            _ = pump(server_read, client_write, Direction::ToClient, mode.clone()) => {}
        }
    };
    tokio::select! {
        _ = work => {}
        _ = reset.changed() => {}
    }
}

async fn pump(
    mut from: OwnedReadHalf,
    mut to: OwnedWriteHalf,
    direction: Direction,
    mut mode: watch::Receiver<State>,
) {
    let mut buf = vec![0u8; 16 * 1024];
    let mut cut = (u64::MAX, 0u64);
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        let mut chunk = buf[..n].to_vec();
        loop {
            let state = *mode.borrow_and_update();
            match state.fault {
                Fault::Blackhole => {
                    if mode.changed().await.is_err() {
                        return;
                    }
                    continue;
                }
                Fault::Latency(delay) => tokio::time::sleep(delay).await,
                Fault::CutAfter(limit) if direction == Direction::ToClient => {
                    if cut.0 != state.generation {
                        cut = (state.generation, 0);
                    }
                    let room = limit.saturating_sub(cut.1) as usize;
                    if chunk.len() >= room {
                        let _ = to.write_all(&chunk[..room]).await;
                        return;
                    }
                    cut.1 += chunk.len() as u64;
                }
                Fault::Corrupt { one_in }
                    if direction == Direction::ToClient
                        && rand::random_range(0..one_in.max(1)) == 0 =>
                {
                    let at = rand::random_range(0..chunk.len());
                    chunk[at] ^= rand::random_range(1..=255u8);
                }
                Fault::Nonsense => return,
                _ => {}
            }
            break;
        }
        if to.write_all(&chunk).await.is_err() {
            return;
        }
    }
}

/// Answers every chunk it reads with a reply that parses but means nothing.
async fn fake_server(mut client: TcpStream) {
    const REPLIES: [&[u8]; 4] = [
        b"$5\r\nhello\r\n",
        b"+QUEUED\r\n",
        b":42\r\n",
        b"$19\r\n\xc7\x01\x00garbage-garbage!\r\n",
    ];
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        match client.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {
                let reply = REPLIES[rand::random_range(0..REPLIES.len())];
                if client.write_all(reply).await.is_err() {
                    return;
                }
            }
        }
    }
}

/// A short self-check of the proxy against a local echo server.
#[tokio::test]
async fn the_fault_proxy_passes_delays_cuts_and_resets() {
    let echo = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = echo.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = echo.accept().await {
            tokio::spawn(async move {
                let mut b = [0u8; 1024];
                while let Ok(n) = s.read(&mut b).await {
                    if n == 0 || s.write_all(&b[..n]).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    let proxy = FaultProxy::start(addr).await;
    let mut c = TcpStream::connect(("127.0.0.1", proxy.port)).await.unwrap();
    let mut b = [0u8; 16];

    c.write_all(b"ping").await.unwrap();
    c.read_exact(&mut b[..4]).await.unwrap();
    assert_eq!(&b[..4], b"ping");

    proxy.set(Fault::Latency(Duration::from_millis(150)));
    let t = std::time::Instant::now();
    c.write_all(b"slow").await.unwrap();
    c.read_exact(&mut b[..4]).await.unwrap();
    assert!(
        t.elapsed() >= Duration::from_millis(250),
        "{:?}",
        t.elapsed()
    );

    proxy.set(Fault::Blackhole);
    c.write_all(b"held").await.unwrap();
    let held = tokio::time::timeout(Duration::from_millis(200), c.read(&mut b)).await;
    assert!(held.is_err(), "a blackhole answered");
    proxy.set(Fault::Pass);
    c.read_exact(&mut b[..4]).await.unwrap();
    assert_eq!(&b[..4], b"held");

    proxy.set(Fault::CutAfter(2));
    c.write_all(b"abcd").await.unwrap();
    let mut got = Vec::new();
    let _ = c.read_to_end(&mut got).await;
    assert_eq!(got, b"ab");

    proxy.set(Fault::Pass);
    let mut c = TcpStream::connect(("127.0.0.1", proxy.port)).await.unwrap();
    c.write_all(b"x").await.unwrap();
    c.read_exact(&mut b[..1]).await.unwrap();
    proxy.reset_all();
    let mut rest = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(2), c.read_to_end(&mut rest))
        .await
        .expect("reset closes the connection");
}
