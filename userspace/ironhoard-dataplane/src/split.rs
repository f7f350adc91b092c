//! The generator's halves of an AF_XDP socket ([`XskSocket::split`]): a
//! sender thread's TX ring and free frames, a receiver thread's RX and
//! fill rings (`ironhoard-pktgen --mode xdp`). The appliance's pollers
//! serve a whole socket instead.

use xsk_rs::{CompQueue, FillQueue, FrameDesc, RxQueue, TxQueue, Umem};

use crate::xsk::{XskSocket, BATCH};

/// The transmit half of a split socket: free frames, TX ring, completions.
pub struct XskTx {
    umem: Umem,
    tx: TxQueue,
    cq: CompQueue,
    free: Vec<FrameDesc>,
    comp: Vec<FrameDesc>,
    batch: Vec<FrameDesc>,
}

/// The receive half of a split socket: RX ring and fill ring.
pub struct XskRx {
    umem: Umem,
    rx: RxQueue,
    fq: FillQueue,
    stash: Vec<FrameDesc>,
    batch: Vec<FrameDesc>,
}

impl XskSocket {
    /// Splits the socket for a sender thread and a receiver thread (the
    /// generator's use): frames on the fill ring belong to the receiver,
    /// the others to the sender.
    pub fn split(self) -> (XskTx, XskRx) {
        let n = self.frames.len();
        (
            XskTx {
                umem: self.umem.clone(),
                tx: self.tx,
                cq: self.cq,
                free: self.frames,
                comp: vec![FrameDesc::default(); n.max(1)],
                batch: Vec::with_capacity(BATCH),
            },
            XskRx {
                umem: self.umem,
                rx: self.rx,
                fq: self.fq,
                stash: Vec::with_capacity(self.sizes.frames as usize),
                batch: vec![FrameDesc::default(); BATCH],
            },
        )
    }
}

impl XskTx {
    /// Takes back completed frames.
    fn reclaim(&mut self) {
        // SAFETY: comp is ours to overwrite; completions are frames we sent.
        let c = unsafe { self.cq.consume(&mut self.comp) };
        self.free.extend_from_slice(&self.comp[..c]);
    }

    /// Sends up to `n` (≤ 64) frames, each written by `build` into a frame
    /// buffer (returning its length). Returns how many went out; fewer when
    /// frames or ring slots are short.
    pub fn send(&mut self, n: usize, mut build: impl FnMut(&mut [u8]) -> usize) -> usize {
        self.reclaim();
        let k = n.min(BATCH).min(self.free.len());
        self.batch.clear();
        for _ in 0..k {
            let mut d = self.free.pop().expect("k <= free");
            // SAFETY: a free frame is in no ring; we own it until produced.
            let mut data = unsafe { self.umem.data_mut(&mut d) };
            let mut cur = data.cursor();
            let cap = cur.buf_len();
            cur.set_pos(cap);
            let len = build(data.contents_mut());
            data.cursor().set_pos(len);
            self.batch.push(d);
        }
        if k == 0 {
            let _ = self.tx.wakeup();
            return 0;
        }
        // SAFETY: the frames in batch hold finished datagrams, in no ring.
        let sent = unsafe { self.tx.produce(&self.batch) };
        if sent < k {
            self.free.extend_from_slice(&self.batch[sent..]);
        }
        if self.tx.needs_wakeup() {
            let _ = self.tx.wakeup();
        }
        sent
    }

    /// Kicks the kernel until every sent frame has completed (or `tries` runs out).
    pub fn flush(&mut self, total: usize, tries: usize) {
        for _ in 0..tries {
            self.reclaim();
            if self.free.len() >= total {
                return;
            }
            let _ = self.tx.wakeup();
            std::thread::yield_now();
        }
    }

    pub fn free_frames(&self) -> usize {
        self.free.len()
    }
}

/// What [`XskRx::recv`] does when its RX ring is empty.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RxIdle {
    /// Sleep in poll(2) up to this many ms. The socket then has a waiter,
    /// and every flush of the RX ring by the sending side (on a veth, the
    /// target's core) pays a wake-up of this thread.
    Poll(i32),
    /// Sleep this long on a timer, then look again. No waiter on the
    /// socket: a flush costs the sending side no wake-up. Adds up to this
    /// much to the receive time of an ack that lands in an empty ring.
    Sleep(std::time::Duration),
}

impl XskRx {
    /// The kernel's XDP_STATISTICS for the socket (as
    /// [`XskSocket::statistics`]): the receiver's own drops, e.g.
    /// `rx_ring_full` when it fell behind.
    pub fn statistics(&self) -> std::io::Result<[u64; 6]> {
        crate::xsk::statistics_of(self.rx.fd())
    }

    /// Receives a batch, calling `f` on each frame, and recycles the frames
    /// to the fill ring. When the ring is empty it waits as `idle` says
    /// (and returns 0 if nothing came in the meantime).
    pub fn recv(&mut self, idle: RxIdle, mut f: impl FnMut(&[u8])) -> usize {
        // SAFETY: batch is ours to overwrite.
        let mut n = unsafe { self.rx.consume(&mut self.batch) };
        if n == 0 {
            match idle {
                RxIdle::Poll(ms) => {
                    let _ = self.rx.poll(ms);
                }
                RxIdle::Sleep(d) => std::thread::sleep(d),
            }
            // SAFETY: as above.
            n = unsafe { self.rx.consume(&mut self.batch) };
        }
        for d in self.batch[..n].iter() {
            // SAFETY: the RX ring handed us this frame; it is in no ring.
            let data = unsafe { self.umem.data(d) };
            f(data.contents());
        }
        self.stash.extend_from_slice(&self.batch[..n]);
        let k = (self.fq.nb_free(self.stash.len() as u32) as usize).min(self.stash.len());
        if k > 0 {
            let from = self.stash.len() - k;
            // SAFETY: stashed frames are in no ring.
            if unsafe { self.fq.produce(&self.stash[from..]) } == k {
                self.stash.truncate(from);
            }
        }
        if self.fq.needs_wakeup() {
            let _ = self.fq.wakeup(self.rx.fd_mut(), 0);
        }
        n
    }
}

