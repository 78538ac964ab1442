module github.com/ephemeral-store/ephemeral-store/store/client

go 1.26.0
