package scrub

// BackupIn is backupIn, for the tests of package scrub_test, which repair
// (importing scrub) in the same scenes.
var BackupIn = backupIn
