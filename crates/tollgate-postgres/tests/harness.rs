//! The private cluster harness itself: it starts, accepts a connection, stops.
mod support;

#[test]
fn cluster_starts_accepts_a_connection_and_stops() {
    let pg = cluster_or_skip!();
    let mut c = postgres::Client::connect(&pg.url, postgres::NoTls).expect("connect");
    let one: i32 = c.query_one("SELECT 1", &[]).expect("select").get(0);
    assert_eq!(one, 1);
    let dir = pg.dir().to_owned();
    drop(c);
    drop(pg);
    assert!(!dir.exists(), "cluster dir removed on drop");
}
