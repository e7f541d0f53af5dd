//! Intrusive doubly linked lists over a slab of nodes, by index: the LRU and per-class lists of
//! the CAM and connection tables. O(1) push and unlink, no allocation; a node's links live in the
//! node itself (`Links`), so a table keeps its entries in one preallocated `Vec`.

/// "No node": the end of a list.
pub(super) const NIL: u32 = u32::MAX;

/// A node that can sit on one list at a time.
pub(super) trait Links {
    fn prev(&self) -> u32;
    fn next(&self) -> u32;
    fn set_links(&mut self, prev: u32, next: u32);
    fn set_prev(&mut self, prev: u32) {
        let next = self.next();
        self.set_links(prev, next);
    }
    fn set_next(&mut self, next: u32) {
        let prev = self.prev();
        self.set_links(prev, next);
    }
}

#[derive(Clone, Copy, Debug)]
pub(super) struct List {
    pub head: u32,
    pub tail: u32,
    pub len: u32,
}

impl List {
    pub const EMPTY: List = List {
        head: NIL,
        tail: NIL,
        len: 0,
    };
}

/// Appends node `idx` (on no list) at the tail: the most recent end.
pub(super) fn list_push_back<N: Links>(nodes: &mut [N], list: &mut List, idx: u32) {
    nodes[idx as usize].set_links(list.tail, NIL);
    if list.tail == NIL {
        list.head = idx;
    } else {
        nodes[list.tail as usize].set_next(idx);
    }
    list.tail = idx;
    list.len += 1;
}

/// Takes node `idx` off `list`.
pub(super) fn list_unlink<N: Links>(nodes: &mut [N], list: &mut List, idx: u32) {
    let i = idx as usize;
    let (prev, next) = (nodes[i].prev(), nodes[i].next());
    if prev == NIL {
        list.head = next;
    } else {
        nodes[prev as usize].set_next(next);
    }
    if next == NIL {
        list.tail = prev;
    } else {
        nodes[next as usize].set_prev(prev);
    }
    nodes[i].set_links(NIL, NIL);
    list.len -= 1;
}
