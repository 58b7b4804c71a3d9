//! `redb_stats FILE [--compact]`: per-table statistics of a gatehouse database (see
//! Cargo.toml). With `--compact`, also the size of a compacted copy (`FILE.compact`).

use redb::{
    Database, Key, ReadTransaction, ReadableDatabase, ReadableTableMetadata, TableDefinition,
    TableHandle, Value,
};

// The first format of the embedded session store (before GD-0013).
const KV: TableDefinition<&str, (u64, &[u8])> = TableDefinition::new("session_kv");
const SETS: TableDefinition<(&str, &str), ()> = TableDefinition::new("session_sets");
const SET_TTL: TableDefinition<&str, u64> = TableDefinition::new("session_set_ttl");
const EXPIRY: TableDefinition<(u64, &str), ()> = TableDefinition::new("session_expiry");
// GD-0013.
const ENTRIES: TableDefinition<&[u8], &[u8]> = TableDefinition::new("store_entries");

fn table<K: Key + 'static, V: Value + 'static>(txn: &ReadTransaction, t: TableDefinition<K, V>) {
    let Ok(tab) = txn.open_table(t) else {
        return;
    };
    let (Ok(s), Ok(n)) = (tab.stats(), tab.len()) else {
        return;
    };
    println!(
        "{:16} entries {:8} stored {:10} B ({:6.1} B/entry)  leaf pages {:6}  branch pages {:4}  metadata {:8} B  fragmented {:9} B",
        t.name(),
        n,
        s.stored_bytes(),
        s.stored_bytes() as f64 / n.max(1) as f64,
        s.leaf_pages(),
        s.branch_pages(),
        s.metadata_bytes(),
        s.fragmented_bytes()
    );
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let path = args.next().ok_or("usage: redb_stats FILE [--compact]")?;
    let compact = args.next().as_deref() == Some("--compact");
    let size = std::fs::metadata(&path)?.len();
    {
        let db = Database::open(&path)?;
        let txn = db.begin_read()?;
        let names: Vec<String> = txn.list_tables()?.map(|t| t.name().to_owned()).collect();
        println!("tables: {}", names.join(" "));
        table(&txn, KV);
        table(&txn, SETS);
        table(&txn, SET_TTL);
        table(&txn, EXPIRY);
        table(&txn, ENTRIES);
        drop(txn);
        let w = db.begin_write()?;
        let s = w.stats()?;
        println!(
            "database: file {size} B, allocated pages {} ({} B), leaf {}, branch {}, stored {} B, page {} B",
            s.allocated_pages(),
            s.allocated_pages() * s.page_size() as u64,
            s.leaf_pages(),
            s.branch_pages(),
            s.stored_bytes(),
            s.page_size()
        );
        w.abort()?;
    }
    if compact {
        let copy = format!("{path}.compact");
        std::fs::copy(&path, &copy)?;
        let mut db = Database::open(&copy)?;
        while db.compact()? {}
        drop(db);
        println!("compacted copy: {} B ({copy})", std::fs::metadata(&copy)?.len());
    }
    Ok(())
}
