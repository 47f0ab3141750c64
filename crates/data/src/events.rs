//! The in-memory form of an event-camera recording, shared by every parser, writer and the
//! frame integration. Struct of arrays: integration walks one field at a time.

/// Events in time order as read from the file. `p` is 0 (OFF) or 1 (ON), the SpikingJelly
/// convention; `t` is in microseconds.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EventStream {
    pub width: u16,
    pub height: u16,
    pub t: Vec<i64>,
    pub x: Vec<u16>,
    pub y: Vec<u16>,
    pub p: Vec<u8>,
}

impl EventStream {
    pub fn new(width: u16, height: u16) -> Self {
        EventStream { width, height, ..Default::default() }
    }

    pub fn len(&self) -> usize {
        self.t.len()
    }

    pub fn is_empty(&self) -> bool {
        self.t.is_empty()
    }

    pub fn push(&mut self, t: i64, x: u16, y: u16, p: u8) {
        self.t.push(t);
        self.x.push(x);
        self.y.push(y);
        self.p.push(p);
    }
}
