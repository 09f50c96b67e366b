//! The log lines a test's own thread writes, for the tests that check
//! what is logged: one logger for the whole test process (`log` takes
//! one), each thread's lines kept apart from the others'.

/// The log lines this thread writes, while it captures them.
struct Capture;

thread_local! {
    static CAPTURED: std::cell::RefCell<Option<Vec<String>>> =
        const { std::cell::RefCell::new(None) };
}

impl log::Log for Capture {
    fn enabled(&self, _: &log::Metadata) -> bool {
        CAPTURED.with(|c| c.borrow().is_some())
    }

    fn log(&self, record: &log::Record) {
        CAPTURED.with(|c| {
            if let Some(lines) = c.borrow_mut().as_mut() {
                lines.push(format!("{} {}", record.level(), record.args()));
            }
        });
    }

    fn flush(&self) {}
}

/// What `f` logs on this thread. The logger is the process's, for
/// every test: the other threads' lines are not kept.
pub(crate) fn logged<T>(f: impl FnOnce() -> T) -> (T, Vec<String>) {
    static INSTALLED: std::sync::Once = std::sync::Once::new();
    INSTALLED.call_once(|| {
        log::set_logger(&Capture).unwrap();
        log::set_max_level(log::LevelFilter::Trace);
    });
    CAPTURED.with(|c| *c.borrow_mut() = Some(Vec::new()));
    let out = f();
    let lines = CAPTURED.with(|c| c.borrow_mut().take()).unwrap_or_default();
    (out, lines)
}
