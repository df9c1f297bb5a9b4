package postgres_test

import (
	"context"
	"testing"

	"github.com/heraldhq/herald"
	"github.com/heraldhq/herald/internal/postgres"
	"github.com/heraldhq/herald/internal/storetest"
	"github.com/heraldhq/herald/internal/testenv"
)

func open(t *testing.T) herald.Store {
	s, err := postgres.Open(context.Background(), testenv.PostgresDB(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestConformance(t *testing.T) {
	storetest.Run(t, open, false)
}
