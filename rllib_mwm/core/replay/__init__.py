"""The replay: episodes in MWM's alignment (`episodes`), the buffer that stores
and samples them (`buffer`), their files on disk and the RAM/disk fit (`store`)."""
