//! Myers' greedy algorithm, one step at a time: the frontier of furthest-reaching paths on each
//! diagonal. The summary's line counts only need the number of steps (O(N+M) memory); the hold
//! patch keeps each step's frontier to walk the edit script back. One loop serves both.

/// The furthest x reached on each diagonal k = x − y, for the steps taken so far.
pub struct Frontier {
    v: Vec<isize>,
    off: isize,
    n: isize,
    m: isize,
}

impl Frontier {
    pub fn new(n: usize, m: usize) -> Frontier {
        let max = n + m;
        Frontier { v: vec![0; 2 * max + 3], off: max as isize + 1, n: n as isize, m: m as isize }
    }

    /// Step `d` (taken in order from 0): extends every diagonal -d, -d+2, …, d by one edit and its
    /// snake of equal lines. True when a path reached the end: `d` is then the edit distance.
    pub fn step(&mut self, a: &[&[u8]], b: &[&[u8]], d: isize) -> bool {
        let mut k = -d;
        while k <= d {
            let i = (self.off + k) as usize;
            let v = &mut self.v;
            let mut x = if k == -d || (k != d && v[i - 1] < v[i + 1]) { v[i + 1] } else { v[i - 1] + 1 };
            let mut y = x - k;
            while x < self.n && y < self.m && a[x as usize] == b[y as usize] {
                x += 1;
                y += 1;
            }
            v[i] = x;
            if x >= self.n && y >= self.m {
                return true;
            }
            k += 2;
        }
        false
    }

    /// The frontier after step `d`, diagonals -d..=d.
    pub fn snapshot(&self, d: isize) -> Vec<isize> {
        self.v[(self.off - d) as usize..=(self.off + d) as usize].to_vec()
    }
}
