//! The tests of a directory served: its settings, and what requests
//! find in it (files, indexes, copies, nothing outside it).

use super::*;
use crate::http::Headers;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::symlink;
use std::time::UNIX_EPOCH;

fn site() -> (tempfile::TempDir, Files) {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("site");
    fs::create_dir_all(root.join("docs")).unwrap();
    fs::create_dir_all(root.join("empty")).unwrap();
    fs::write(root.join("index.html"), "<h1>home</h1>").unwrap();
    fs::write(root.join("docs/index.html"), "<h1>docs</h1>").unwrap();
    fs::write(root.join("app.js"), "let a = 1;").unwrap();
    fs::write(root.join("a b.txt"), "spaced").unwrap();
    fs::write(root.join(".env"), "SECRET=1").unwrap();
    fs::write(dir.path().join("outside.txt"), "outside").unwrap();
    let files = Files::open(root.to_str().unwrap()).unwrap();
    (dir, files)
}

impl Files {
    fn find_plain(&self, under: &str) -> Found {
        self.find(under, &Headers::new(), false)
    }
}

fn body_of(found: Found) -> String {
    match found {
        Found::File(served) => io::read_to_string(served.file).unwrap(),
        other => panic!("no file: {other:?}"),
    }
}

#[test]
fn a_path_names_a_file_and_a_directory_its_index() {
    let (_dir, files) = site();
    assert_eq!(body_of(files.find_plain("/app.js")), "let a = 1;");
    assert_eq!(body_of(files.find_plain("/")), "<h1>home</h1>");
    assert!(matches!(files.find_plain(""), Found::Directory));
}

#[test]
fn escapes_are_decoded_and_slashes_merged() {
    let (_dir, files) = site();
    assert_eq!(body_of(files.find_plain("/a%20b.txt")), "spaced");
    assert_eq!(body_of(files.find_plain("//docs//")), "<h1>docs</h1>");
    assert_eq!(body_of(files.find_plain("/%61pp.js")), "let a = 1;");
}

#[test]
fn a_directory_without_its_slash_is_redirected_and_one_without_index_missing() {
    let (_dir, files) = site();
    assert!(matches!(files.find_plain("/docs"), Found::Directory));
    assert!(matches!(files.find_plain("/empty/"), Found::Missing));
    assert!(matches!(files.find_plain("/nothing.txt"), Found::Missing));
    assert!(matches!(files.find_plain("/app.js/"), Found::Missing));
}

#[test]
fn nothing_outside_or_hidden_is_served() {
    let (dir, files) = site();
    for path in [
        "/.env",
        "/%2Eenv",
        "/../outside.txt",
        "/%2E%2E/outside.txt",
        "/docs/%2E%2E/%2E%2E/outside.txt",
        "/..%2Foutside.txt",
        "/docs%2F..%2F..%2Foutside.txt",
        "/app.js%00.png",
        "/%zz",
        "/%4",
        "/%+0",
    ] {
        assert!(matches!(files.find_plain(path), Found::Missing), "{path}");
    }
    // A link out of the directory is not followed out of it; one
    // inside it is.
    let root = dir.path().join("site");
    symlink(dir.path().join("outside.txt"), root.join("out.txt")).unwrap();
    symlink(root.join("app.js"), root.join("latest.js")).unwrap();
    symlink(dir.path(), root.join("up")).unwrap();
    fs::create_dir(root.join(".git")).unwrap();
    fs::write(root.join(".git/config"), "secret").unwrap();
    symlink(root.join(".git"), root.join("git")).unwrap();
    assert!(matches!(files.find_plain("/git/config"), Found::Missing));
    assert!(matches!(files.find_plain("/out.txt"), Found::Missing));
    assert!(matches!(
        files.find_plain("/up/outside.txt"),
        Found::Missing
    ));
    assert_eq!(body_of(files.find_plain("/latest.js")), "let a = 1;");
}

#[test]
fn a_directory_that_is_a_link_is_followed_when_switched() {
    let dir = tempfile::tempdir().unwrap();
    for release in ["1", "2"] {
        fs::create_dir(dir.path().join(release)).unwrap();
        fs::write(dir.path().join(release).join("v.txt"), release).unwrap();
    }
    let current = dir.path().join("current");
    symlink(dir.path().join("1"), &current).unwrap();
    let files = Files {
        beneath: Beneath::reopening_each_time(),
        ..Files::open(current.to_str().unwrap()).unwrap()
    };
    assert_eq!(body_of(files.find_plain("/v.txt")), "1");
    let next = dir.path().join("next");
    symlink(dir.path().join("2"), &next).unwrap();
    fs::rename(&next, &current).unwrap();
    assert_eq!(body_of(files.find_plain("/v.txt")), "2");
    // The first release, now outside the directory, is not served
    // through a link left in the second.
    symlink(dir.path().join("1/v.txt"), dir.path().join("2/old.txt")).unwrap();
    assert!(matches!(files.find_plain("/old.txt"), Found::Missing));
}

#[test]
fn a_fallback_file_answers_what_is_missing_and_nothing_else() {
    let (_dir, files) = site();
    let files = files.with_fallback_file("/index.html").unwrap();
    assert_eq!(files.fallback_file(), Some(Path::new("index.html")));
    for missing in ["/app/settings", "/nothing.txt", "/.env", "/empty/"] {
        assert_eq!(
            body_of(files.find_plain(missing)),
            "<h1>home</h1>",
            "{missing}"
        );
    }
    assert_eq!(body_of(files.find_plain("/app.js")), "let a = 1;");
    assert!(matches!(files.find_plain("/docs"), Found::Directory));
    let Found::File(served) = files.find_plain("/deep/link") else {
        panic!()
    };
    assert_eq!(served.content_type, "text/html; charset=utf-8");
}

#[test]
fn a_fallback_file_must_be_a_file_of_the_directory() {
    let (dir, _) = site();
    let files = || Files::open(dir.path().join("site").to_str().unwrap()).unwrap();
    for bad in [
        "/index%2Ehtml",
        "/missing.html",
        "/docs",
        "/",
        "/.env",
        "/../outside.txt",
        "index.html",
    ] {
        let e = files().with_fallback_file(bad).map(|_| ()).unwrap_err();
        assert!(e.starts_with(&format!("fallback={bad}: ")), "{bad}: {e}");
    }
    assert!(files().with_fallback_file("/docs/index.html").is_ok());
}

#[test]
fn a_socket_is_no_file() {
    let (dir, files) = site();
    let _socket = std::os::unix::net::UnixListener::bind(dir.path().join("site/sock")).unwrap();
    assert!(matches!(files.find_plain("/sock"), Found::Missing));
}

#[test]
fn a_fifo_is_not_served_nor_waited_on() {
    let (dir, files) = site();
    let fifo = dir.path().join("site/pipe");
    let path = std::ffi::CString::new(fifo.as_os_str().as_bytes()).unwrap();
    // SAFETY: a valid NUL-terminated path; mkfifo only creates a node.
    assert_eq!(unsafe { libc::mkfifo(path.as_ptr(), 0o644) }, 0);
    assert!(matches!(files.find_plain("/pipe"), Found::Missing));
}

#[test]
fn precompressed_copies_go_to_the_clients_that_take_them() {
    let (dir, files) = site();
    let root = dir.path().join("site");
    fs::write(root.join("app.js.gz"), "gzipped").unwrap();
    fs::write(root.join("app.js.br"), "brotli").unwrap();
    fs::write(root.join("docs/index.html.gz"), "gzipped index").unwrap();
    let asking = |coding: &str| request(&[("Accept-Encoding", coding)]);
    let plain = files.find("/app.js", &asking("gzip, br"), false);
    assert_eq!(body_of(plain), "let a = 1;", "off unless asked for");
    let files = files.with_precompressed();
    let found = |under, coding| match files.find(under, &asking(coding), false) {
        Found::File(served) => {
            assert!(served.varies);
            if under == "/app.js" {
                assert_eq!(served.content_type, mime::content_type(b"x.js"));
            }
            let encoding = served.encoding;
            (encoding, io::read_to_string(served.file).unwrap())
        }
        other => panic!("{other:?}"),
    };
    assert_eq!(found("/app.js", "gzip, br"), (Some("br"), "brotli".into()));
    assert_eq!(found("/app.js", "gzip"), (Some("gzip"), "gzipped".into()));
    assert_eq!(
        found("/app.js", "br;q=0, gzip"),
        (Some("gzip"), "gzipped".into())
    );
    assert_eq!(found("/app.js", "identity"), (None, "let a = 1;".into()));
    assert_eq!(
        found("/docs/", "br, gzip"),
        (Some("gzip"), "gzipped index".into())
    );
    // The copy is asked for as the file is; by its own name it is a
    // file as any other.
    assert!(matches!(
        files.find("/app.js.gz", &asking("identity"), false),
        Found::File(Served { encoding: None, .. })
    ));
}

#[test]
fn a_copy_alone_goes_to_the_clients_that_take_it_and_with_gunzip_to_the_others() {
    let (dir, files) = site();
    let root = dir.path().join("site");
    fs::write(root.join("only.css.gz"), "gzipped").unwrap();
    fs::write(root.join("both.svg.br"), "brotli").unwrap();
    fs::write(root.join("both.svg.gz"), "gzipped svg").unwrap();
    fs::write(root.join("brotli.js.br"), "brotli").unwrap();
    let asking = |coding: &str| request(&[("Accept-Encoding", coding)]);
    // Off unless asked for: nothing but the file itself is looked for.
    assert!(matches!(
        files.find("/only.css", &asking("gzip"), true),
        Found::Missing
    ));
    let files = files.with_precompressed();
    let copy = |found: Found| match found {
        Found::File(served) | Found::GzipAlone(served) => {
            assert!(served.varies);
            let name = served
                .path
                .file_name()
                .unwrap()
                .to_str()
                .unwrap()
                .to_string();
            (served.content_type, served.encoding, name)
        }
        other => panic!("{other:?}"),
    };
    let css = mime::content_type(b"x.css");
    let found = files.find("/only.css", &asking("gzip"), false);
    assert!(matches!(found, Found::File(_)), "{found:?}");
    assert_eq!(copy(found), (css, Some("gzip"), "only.css.gz".into()));
    let found = files.find("/both.svg", &asking("br, gzip"), false);
    assert_eq!(copy(found).1, Some("br"));
    // A client that takes neither: decoded with gunzip, else missing.
    let found = files.find("/only.css", &asking("identity"), true);
    assert!(matches!(found, Found::GzipAlone(_)), "{found:?}");
    assert_eq!(copy(found), (css, Some("gzip"), "only.css.gz".into()));
    let found = files.find("/only.css", &Headers::new(), false);
    assert!(matches!(found, Found::Missing), "{found:?}");
    let found = files.find("/both.svg", &asking("br;q=0"), true);
    assert_eq!(copy(found).2, "both.svg.gz");
    // Only gzip is decoded; a directory's index is no copy alone.
    assert!(matches!(
        files.find("/brotli.js", &Headers::new(), true),
        Found::Missing
    ));
    fs::write(root.join("docs/only.html.gz"), "x").unwrap();
    assert!(matches!(
        files.find("/docs/only.html/", &asking("gzip"), true),
        Found::Missing
    ));
}

#[test]
fn the_file_of_a_copy_is_found_when_it_is_there() {
    let (dir, files) = site();
    let root = dir.path().join("site");
    fs::write(root.join("app.js.gz"), "gzipped").unwrap();
    fs::write(root.join("only.css.gz"), "gzipped").unwrap();
    fs::write(root.join("logo.svgz"), "svg gzipped by its name").unwrap();
    fs::write(root.join("logo"), "not the svg").unwrap();
    let files = files.with_precompressed();
    let gzip = request(&[("Accept-Encoding", "gzip")]);
    let find = |under| match files.find(under, &gzip, false) {
        Found::File(served) => served,
        other => panic!("{other:?}"),
    };
    let file = files.file_of_copy(&find("/app.js")).expect("app.js");
    assert_eq!((file.path.to_str(), file.encoding), (Some("app.js"), None));
    assert_eq!(io::read_to_string(file.file).unwrap(), "let a = 1;");
    assert!(
        files.file_of_copy(&find("/only.css")).is_none(),
        "a copy alone"
    );
    let svgz = find("/logo.svgz");
    assert_eq!(svgz.encoding, Some("gzip"));
    assert!(files.file_of_copy(&svgz).is_none(), "coded by its own name");
}

#[test]
fn the_type_is_the_names() {
    let (_dir, files) = site();
    let Found::File(served) = files.find_plain("/docs/") else {
        panic!()
    };
    assert_eq!(served.content_type, "text/html; charset=utf-8");
    assert_eq!(served.len, 13);
}

#[test]
fn a_missing_or_plain_file_is_no_directory() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("f");
    fs::write(&file, "x").unwrap();
    let missing = dir.path().join("missing");
    assert!(matches!(
        Files::open(file.to_str().unwrap()),
        Err(FilesError::NotADirectory(_))
    ));
    let error = Files::open(missing.to_str().unwrap()).unwrap_err();
    assert!(error.to_string().contains("missing"), "{error}");
}

pub(super) fn request(fields: &[(&str, &str)]) -> Headers {
    let mut headers = Headers::new();
    for (name, value) in fields {
        headers.push(name, value);
    }
    headers
}

#[test]
fn max_age_and_immutable_make_the_cache_control() {
    let (_dir, files) = site();
    assert_eq!(files.cache_control(), None);
    let e = files.with_immutable().map(|_| ()).unwrap_err();
    assert!(e.contains("max_age="), "{e}");
    let (_dir, files) = site();
    let files = files.with_max_age(Duration::from_secs(3600));
    assert_eq!(files.cache_control().as_deref(), Some("max-age=3600"));
    let files = files.with_immutable().unwrap();
    assert!(files.immutable());
    let immutable = files.cache_control();
    assert_eq!(immutable.as_deref(), Some("max-age=3600, immutable"));
}

#[test]
fn a_relative_link_leads_only_to_what_a_request_could_name() {
    let (dir, files) = site();
    let root = dir.path().join("site");
    fs::create_dir(root.join(".git")).unwrap();
    fs::write(root.join(".git/config"), "secret").unwrap();
    symlink(".git", root.join("git")).unwrap();
    symlink(".env", root.join("env")).unwrap();
    symlink("../outside.txt", root.join("out.txt")).unwrap();
    symlink("docs/index.html", root.join("docs.html")).unwrap();
    for path in ["/git/config", "/env", "/out.txt"] {
        assert!(matches!(files.find_plain(path), Found::Missing), "{path}");
    }
    assert_eq!(body_of(files.find_plain("/docs.html")), "<h1>docs</h1>");
}

#[test]
fn an_escaped_slash_is_no_separator() {
    let (_dir, files) = site();
    assert!(matches!(
        files.find_plain("/docs%2Findex.html"),
        Found::Missing
    ));
}

#[test]
fn a_link_to_a_fifo_is_not_served() {
    let (dir, files) = site();
    let fifo = dir.path().join("site/pipe");
    let path = std::ffi::CString::new(fifo.as_os_str().as_bytes()).unwrap();
    // SAFETY: a valid NUL-terminated path; mkfifo only creates a node.
    assert_eq!(unsafe { libc::mkfifo(path.as_ptr(), 0o644) }, 0);
    symlink("pipe", dir.path().join("site/pipe.txt")).unwrap();
    assert!(matches!(files.find_plain("/pipe.txt"), Found::Missing));
}

#[test]
fn a_file_is_served_with_its_length_and_its_time_to_the_second() {
    let (dir, files) = site();
    let at = UNIX_EPOCH + Duration::new(784_111_777, 500_000_000);
    let app = fs::File::options()
        .write(true)
        .open(dir.path().join("site/app.js"));
    app.unwrap().set_modified(at).unwrap();
    let Found::File(served) = files.find_plain("/app.js") else {
        panic!()
    };
    assert_eq!(served.len, 10);
    assert_eq!(
        served.modified,
        UNIX_EPOCH + Duration::from_secs(784_111_777)
    );
}

#[test]
fn a_listing_holds_what_the_route_serves_and_nothing_else() {
    let (dir, files) = site();
    let files = files.with_autoindex(Format::Json).unwrap();
    let root = dir.path().join("site");
    let empty = root.join("empty");
    fs::write(empty.join("a.txt"), "aaa").unwrap();
    let a = fs::File::options().write(true).open(empty.join("a.txt"));
    a.unwrap()
        .set_modified(UNIX_EPOCH + Duration::from_secs(784_111_777))
        .unwrap();
    fs::create_dir(empty.join("sub")).unwrap();
    fs::write(empty.join(".hidden"), "h").unwrap();
    fs::write(empty.join("back\\slash"), "b").unwrap();
    symlink(root.join("app.js"), empty.join("app.js")).unwrap();
    symlink(root.join("docs"), empty.join("docs")).unwrap();
    symlink(dir.path().join("outside.txt"), empty.join("out.txt")).unwrap();
    symlink(root.join(".env"), empty.join("env")).unwrap();
    let _socket = std::os::unix::net::UnixListener::bind(empty.join("sock")).unwrap();
    let Found::Listing(listing, Format::Json) = files.find_plain("/empty/") else {
        panic!()
    };
    let listed: Vec<(&[u8], bool)> = (listing.entries.iter())
        .map(|e| (&e.name[..], e.directory))
        .collect();
    assert_eq!(
        listed,
        [
            (&b"docs"[..], true),
            (b"sub", true),
            (b"a.txt", false),
            (b"app.js", false)
        ]
    );
    let (a, app) = (&listing.entries[2], &listing.entries[3]);
    assert_eq!(a.len, 3);
    assert_eq!(a.modified, UNIX_EPOCH + Duration::from_secs(784_111_777));
    // A link's is what it leads to.
    assert_eq!(app.len, 10);
    assert!(!listing.cut);
}

#[test]
fn only_what_the_proxy_itself_ran_out_of_is_exhaustion() {
    let unopened = |error| Unopened {
        path: PathBuf::from("/srv/www/a.txt"),
        error,
    };
    for errno in [libc::EMFILE, libc::ENFILE, libc::ENOMEM] {
        let error = io::Error::from_raw_os_error(errno);
        assert!(unopened(error).exhausted(), "{errno}");
    }
    assert!(unopened(io::ErrorKind::OutOfMemory.into()).exhausted());
    for errno in [libc::EIO, libc::EACCES] {
        let error = io::Error::from_raw_os_error(errno);
        assert!(!unopened(error).exhausted(), "{errno}");
    }
}

#[test]
fn a_refused_open_is_forbidden_and_an_unexpected_one_failed() {
    let path = Path::new("/srv/www/a.txt");
    let found = |errno| open::found_for(io::Error::from_raw_os_error(errno), path);
    assert!(matches!(found(libc::EACCES), Found::Forbidden(u) if u.path == path));
    assert!(matches!(found(libc::EPERM), Found::Forbidden(_)));
    for missing in [libc::ENOENT, libc::ENOTDIR, libc::ELOOP, libc::ENXIO] {
        assert!(matches!(found(missing), Found::Missing), "{missing}");
    }
    assert!(matches!(found(libc::EIO), Found::Failed(u) if u.path == path));
}
