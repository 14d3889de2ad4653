//! Ports for test processes (shared by the test binaries that start `tollgate` themselves).

use std::net::TcpListener;

/// A port nobody listens on, never the same twice in this process (tests run in parallel and
/// the kernel may hand a just-released port out again).
pub fn free_port() -> u16 {
    static GIVEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    let mut given = GIVEN.lock().unwrap();
    loop {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        if !given.contains(&port) {
            given.push(port);
            return port;
        }
    }
}
