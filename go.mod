module github.com/ephemeral-store/ephemeral-store

go 1.26
