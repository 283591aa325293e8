package testutil

// logTailBytes is how much of a process's log an error carries.
const logTailBytes = 2048
