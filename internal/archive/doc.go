// Package archive writes a backup's file tree as one PAX tar stream and
// restores such a stream safely.
//
// Pack walks the given paths in a fixed order (sorted directory entries) and
// writes a tar stream GNU tar can read; workers read the next files ahead
// while the current one is written, within a fixed memory budget. Extract
// treats its input as hostile: it refuses paths that leave the target
// directory, writes that would go through a symbolic link, and entry types it
// does not restore, and it writes into a staging directory that it moves into
// place only after the whole stream was read and checked. List and Check read
// a stream with the same rules without writing files.
//
// The stream layout is described in section 1 of docs/FORMAT.md.
package archive
