// Package state keeps the state of one incremental backup series in a
// folder: the file index of the last stored backup, the chain of backups it
// belongs to, and the record bk-pack leaves for bk-push about the run in
// progress. The folder is locked against two runs at once.
//
// The index is read as a stream and merged against the walk, which visits
// directories in the same order the index stores them, so memory stays
// bounded by one directory listing whatever the size of the tree.
//
// The formats are described in section 6 of docs/FORMAT.md.
package state
