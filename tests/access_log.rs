//! Each pool's own access log (`pool.<name>.path_to_log`): a copy of the
//! lines of the requests routed to it, besides the main log, which keeps
//! every line; reopened with the main one (SIGUSR1), switched by a reload.

mod support;

use inverso::server::ReloadError;
use std::path::{Path, PathBuf};
use std::time::Duration;
use support::*;

/// The three backends: `targets`' and the two pools'.
struct Sites {
    main: Backend,
    shop: Backend,
    blog: Backend,
}

impl Sites {
    fn start() -> Sites {
        Sites {
            main: Backend::echo("main"),
            shop: Backend::echo("shop"),
            blog: Backend::echo("blog"),
        }
    }

    /// proxy.conf: `/shop/` and `/blog/` routed to pools of their own, the
    /// shop's log at `shop_log` and the blog's at `blog_log` (none for an
    /// empty one), and a path the proxy answers itself.
    fn conf(&self, shop_log: &Path, blog_log: &Path) -> String {
        format!(
            "targets = {}\n\
             pool.shop = {}\npool.shop.path_to_log = {}\n\
             pool.blog = {}\npool.blog.path_to_log = {}\n\
             route./shop/ = shop\nroute./blog/ = blog\n\
             route./healthz = return 200 ok\n",
            self.main.addr,
            self.shop.addr,
            shop_log.display(),
            self.blog.addr,
            blog_log.display(),
        )
    }
}

fn lines(path: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.lines().map(str::to_string).collect()
}

/// `GET path`, which must be answered 200.
#[track_caller]
fn get(proxy: &Proxy, path: &str) {
    assert_eq!(proxy.connect().get(path).status, 200, "{path}");
}

/// Whether exactly one of `lines` is of a request for `path`.
fn one_for(lines: &[String], path: &str) -> bool {
    let asked = format!("\"GET {path} HTTP/1.1\"");
    lines.iter().filter(|l| l.contains(&asked)).count() == 1
}

fn in_dir(dir: &tempfile::TempDir, name: &str) -> PathBuf {
    dir.path().join(name)
}

#[test]
fn each_pool_logs_its_requests_to_its_own_file_and_the_main_log_keeps_all() {
    let sites = Sites::start();
    let dir = tempfile::tempdir().unwrap();
    let (shop_log, blog_log) = (in_dir(&dir, "shop.log"), in_dir(&dir, "blog.log"));
    let mut proxy = start_proxy(&[], from_file(&sites.conf(&shop_log, &blog_log)));
    for path in ["/shop/cart", "/blog/post", "/healthz", "/about"] {
        get(&proxy, path);
    }
    assert!(proxy.shutdown(Duration::from_secs(5)));
    let (shop, blog) = (lines(&shop_log), lines(&blog_log));
    assert_eq!(shop.len(), 1, "{shop:?}");
    assert!(one_for(&shop, "/shop/cart") && shop[0].contains(" pool=shop"));
    assert_eq!(blog.len(), 1, "{blog:?}");
    assert!(one_for(&blog, "/blog/post") && blog[0].contains(" pool=blog"));
    // The main log has every line, those that went to no pool (a route
    // answered by the proxy) and to `targets` too.
    let main = proxy.log_lines();
    assert_eq!(main.len(), 4, "{main:?}");
    for path in ["/shop/cart", "/blog/post", "/healthz", "/about"] {
        assert!(one_for(&main, path), "{path}: {main:?}");
    }
}

#[test]
fn a_reopen_starts_a_pools_file_afresh_after_logrotate_moved_it() {
    let sites = Sites::start();
    let dir = tempfile::tempdir().unwrap();
    let (shop_log, blog_log) = (in_dir(&dir, "shop.log"), in_dir(&dir, "blog.log"));
    let mut proxy = start_proxy(&[], from_file(&sites.conf(&shop_log, &blog_log)));
    get(&proxy, "/shop/before");
    assert!(wait_until(WAIT_LIMIT, || lines(&shop_log).len() == 1));
    let rotated = in_dir(&dir, "shop.log.1");
    std::fs::rename(&shop_log, &rotated).unwrap();
    proxy.handle().control().reopen_log().unwrap();
    assert!(shop_log.exists(), "not opened afresh");
    get(&proxy, "/shop/after");
    assert!(proxy.shutdown(Duration::from_secs(5)));
    let (old, new) = (lines(&rotated), lines(&shop_log));
    assert!(old.len() == 1 && one_for(&old, "/shop/before"), "{old:?}");
    assert!(new.len() == 1 && one_for(&new, "/shop/after"), "{new:?}");
}

#[test]
fn a_reload_switches_pools_files_and_one_it_cannot_open_is_refused_keeping_the_old() {
    let sites = Sites::start();
    let dir = tempfile::tempdir().unwrap();
    let (shop_log, blog_log) = (in_dir(&dir, "shop.log"), in_dir(&dir, "blog.log"));
    let mut proxy = start_proxy(&[], from_file(&sites.conf(&shop_log, &blog_log)));
    let unopenable = in_dir(&dir, "missing/shop.log");
    let next = proxy.config_for(&[], from_file(&sites.conf(&unopenable, &blog_log)));
    match proxy.handle().control().reload(next) {
        Err(e @ ReloadError::Log(_)) => {
            assert!(e.to_string().contains("pool.shop.path_to_log: "), "{e}");
        }
        other => panic!("taken: {other:?}"),
    }
    get(&proxy, "/shop/kept");
    assert!(wait_until(WAIT_LIMIT, || one_for(
        &lines(&shop_log),
        "/shop/kept"
    )));
    // The shop to a new file, the blog to the main log alone.
    let moved = in_dir(&dir, "shop-new.log");
    let next = proxy.config_for(&[], from_file(&sites.conf(&moved, Path::new(""))));
    proxy.handle().control().reload(next).unwrap();
    get(&proxy, "/shop/moved");
    get(&proxy, "/blog/unlogged");
    assert!(proxy.shutdown(Duration::from_secs(5)));
    assert_eq!(lines(&shop_log).len(), 1);
    let new = lines(&moved);
    assert!(new.len() == 1 && one_for(&new, "/shop/moved"), "{new:?}");
    assert!(lines(&blog_log).is_empty());
    assert!(one_for(&proxy.log_lines(), "/blog/unlogged"));
}

#[test]
fn a_pools_file_that_cannot_be_opened_stops_the_start_naming_its_key() {
    let sites = Sites::start();
    let dir = tempfile::tempdir().unwrap();
    let mut config = inverso::Config::with_targets(Vec::new());
    from_file(&sites.conf(&in_dir(&dir, "missing/shop.log"), Path::new("")))(&mut config);
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    match inverso::Server::start_on(listener, config) {
        Err(e @ inverso::server::StartError::AccessLog(_)) => {
            assert!(
                e.to_string()
                    .contains("pool.shop.path_to_log: cannot open "),
                "{e}"
            );
        }
        Err(e) => panic!("{e}"),
        Ok(_) => panic!("started"),
    }
}

/// The one line of `lines`, parsed as JSON.
#[track_caller]
fn one_json(lines: &[String]) -> inverso::json_value::Value {
    assert_eq!(lines.len(), 1, "{lines:?}");
    inverso::json_value::parse(lines[0].as_bytes()).unwrap_or_else(|e| panic!("{e:?}: {lines:?}"))
}

#[test]
fn a_pools_file_takes_its_own_format_and_the_main_log_keeps_its_own() {
    let sites = Sites::start();
    let dir = tempfile::tempdir().unwrap();
    let (shop_log, blog_log) = (in_dir(&dir, "shop.log"), in_dir(&dir, "blog.log"));
    let conf = format!(
        "{}pool.shop.log_format = json\n\
         pool.blog.log_format = site=$pool \"$request\" $status\n",
        sites.conf(&shop_log, &blog_log)
    );
    let mut proxy = start_proxy(&[], from_file(&conf));
    for path in ["/shop/cart?id=7", "/blog/post"] {
        get(&proxy, path);
    }
    assert!(proxy.shutdown(Duration::from_secs(5)));
    let shop = one_json(&lines(&shop_log));
    let request = shop.get("request").and_then(|r| r.as_str());
    assert_eq!(request, Some("GET /shop/cart?id=7 HTTP/1.1"));
    assert_eq!(shop.get("pool").and_then(|p| p.as_str()), Some("shop"));
    assert_eq!(
        lines(&blog_log),
        ["site=blog \"GET /blog/post HTTP/1.1\" 200"]
    );
    // The main log: combined lines, the pools' as every other.
    let main = proxy.log_lines();
    assert_eq!(main.len(), 2, "{main:?}");
    for (path, pool) in [("/shop/cart?id=7", "shop"), ("/blog/post", "blog")] {
        assert!(one_for(&main, path), "{path}: {main:?}");
        let line = main.iter().find(|l| l.contains(path)).unwrap();
        assert!(line.starts_with("127.0.0.1 - - ["), "{line}");
        assert!(line.ends_with(&format!(" pool={pool}")), "{line}");
    }
}

#[test]
fn a_pools_template_gets_the_values_only_it_names() {
    // The request field, the backend's field and the field sent that
    // the shop's template names, and the main one does not: a record
    // carries them all the same.
    let sites = Sites::start();
    let dir = tempfile::tempdir().unwrap();
    let (shop_log, blog_log) = (in_dir(&dir, "shop.log"), in_dir(&dir, "blog.log"));
    let conf = format!(
        "{}log_format = \"$request\" main=$http_x_main\n\
         pool.shop.log_format = customer=$http_x_customer up=$upstream_http_x_backend \
         sent=$sent_http_x_backend\n",
        sites.conf(&shop_log, &blog_log)
    );
    let mut proxy = start_proxy(&[], from_file(&conf));
    let fields = [("X-Customer", "acme"), ("X-Main", "m1")];
    for path in ["/shop/cart", "/about"] {
        assert_eq!(proxy.connect().get_with(path, &fields).status, 200);
    }
    assert!(proxy.shutdown(Duration::from_secs(5)));
    assert_eq!(lines(&shop_log), ["customer=acme up=shop sent=shop"]);
    let mut main = proxy.log_lines();
    main.sort();
    assert_eq!(
        main,
        [
            "\"GET /about HTTP/1.1\" main=m1",
            "\"GET /shop/cart HTTP/1.1\" main=m1"
        ]
    );
}

#[test]
fn a_reload_applies_a_pools_changed_format() {
    let sites = Sites::start();
    let dir = tempfile::tempdir().unwrap();
    let (shop_log, blog_log) = (in_dir(&dir, "shop.log"), in_dir(&dir, "blog.log"));
    let conf = sites.conf(&shop_log, &blog_log);
    let mut proxy = start_proxy(&[], from_file(&conf));
    get(&proxy, "/shop/before");
    let json = format!("{conf}pool.shop.log_format = json\n");
    proxy
        .handle()
        .control()
        .reload(proxy.config_for(&[], from_file(&json)))
        .unwrap();
    get(&proxy, "/shop/after");
    assert!(proxy.shutdown(Duration::from_secs(5)));
    let shop = lines(&shop_log);
    assert_eq!(shop.len(), 2, "{shop:?}");
    assert!(one_for(&shop[..1], "/shop/before"), "{shop:?}");
    let after = one_json(&shop[1..]);
    let request = after.get("request").and_then(|r| r.as_str());
    assert_eq!(request, Some("GET /shop/after HTTP/1.1"));
}
