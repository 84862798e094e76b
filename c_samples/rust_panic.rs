// A Rust panic with a formatted message several calls deep, through a generic function,
// an inherent method, a trait method and a closure, so that the v0 symbols of this program
// use paths, impls, generic arguments and types. Built with -C panic=abort: std's default
// hook prints "thread 'main' panicked at FILE:LINE:COL:\nMESSAGE" and the process aborts
// (SIGABRT) with the message still in memory.
//
//   rust_panic          panic!("config value {key:?} out of range: {value} > {limit}")
//   rust_panic segv     write through a null pointer in `unsafe` code (SIGSEGV)
//   rust_panic unwrap   Option::unwrap() on None: a panic whose message is a &'static str
//   rust_panic names    exit 0 (the `names` module only gives the demangler symbols to read:
//                       const generics, fn pointers, trait objects, lifetimes, punycode)
use std::collections::HashMap;
use std::fmt::Debug;

pub struct Config {
    values: HashMap<String, u64>,
    limit: u64,
}

pub trait Check {
    fn check(&self, key: &str) -> u64;
}

impl Config {
    #[inline(never)]
    pub fn new(limit: u64) -> Config {
        let mut values = HashMap::new();
        values.insert("depth".to_string(), 7);
        values.insert("width".to_string(), 4242);
        Config { values, limit }
    }

    #[inline(never)]
    fn value_of<K: AsRef<str> + Debug>(&self, key: K) -> u64 {
        let value = *self.values.get(key.as_ref()).unwrap_or(&0);
        if value > self.limit {
            panic!("config value {key:?} out of range: {value} > {}", self.limit);
        }
        value
    }
}

impl Check for Config {
    #[inline(never)]
    fn check(&self, key: &str) -> u64 {
        self.value_of(key)
    }
}

#[inline(never)]
fn validate<T: Check + ?Sized>(item: &T, keys: &[&str]) -> u64 {
    keys.iter().map(|k| item.check(k)).sum()
}

#[inline(never)]
fn store(slot: *mut u64, value: u64) {
    // SAFETY: not safe at all; the segv variant passes a null pointer on purpose.
    unsafe { *slot = value };
}

#[inline(never)]
fn fill(slots: &[*mut u64; 2], dyn_check: &dyn Check) {
    for s in slots {
        store(*s, dyn_check.check("depth"));
    }
}

mod names {
    pub struct Grid<const W: usize, const NEG: i32, const ON: bool, const C: char>([u8; W]);

    impl<const W: usize, const NEG: i32, const ON: bool, const C: char> Grid<W, NEG, ON, C> {
        #[inline(never)]
        pub fn width(&self) -> usize {
            W + self.0.len()
        }
    }

    /// One instance per type argument: each symbol spells its type.
    #[inline(never)]
    pub fn grüße<T: ?Sized>(t: &T) -> usize {
        std::mem::size_of_val(t)
    }

    fn id(x: &u8) -> &u8 {
        x
    }

    extern "C" fn twice(x: i32) -> i32 {
        x * 2
    }

    #[inline(never)]
    pub fn run() -> usize {
        let g = Grid::<4, -3, true, 'ß'>([1, 2, 3, 4]);
        let f: for<'a> fn(&'a u8) -> &'a u8 = id;
        let c: unsafe extern "C" fn(i32) -> i32 = twice;
        let it: &mut dyn Iterator<Item = u8> = &mut [1u8, 2].iter().copied();
        let raw: (*const (u16, i64), *mut [u32; 0], [char; 3], (), (bool,)) =
            (std::ptr::null(), std::ptr::null_mut(), ['a'; 3], (), (true,));
        g.width() + grüße(&f) + grüße(&c) + grüße(it) + grüße(&raw) + grüße("str") + grüße(&[1i128][..])
    }
}

fn main() {
    let config = Config::new(1000);
    if std::env::args().nth(1).as_deref() == Some("unwrap") {
        let missing: Option<u64> = config.values.get("height").copied();
        println!("{}", missing.unwrap());
    }
    if std::env::args().nth(1).as_deref() == Some("names") {
        println!("{}", names::run());
        return;
    }
    if std::env::args().nth(1).as_deref() == Some("segv") {
        let mut ok = 0u64;
        // Two words past null: Rust's debug-build check catches a null pointer, not this one.
        fill(&[&mut ok, std::ptr::null_mut::<u64>().wrapping_add(2)], &config);
        return;
    }
    let total = validate(&config, &["depth", "width"]);
    println!("{total}");
}
