// Command bareecho is the baseline for scripts/bench.sh: a bare Echo server
// with the same route shape as hookbay's Bubblehouse receiver, whose handler
// only reads the body and answers 200 {"ok":true}. hookbay's throughput is
// reported as a ratio of this server's, measured in the same run.
package main

import (
	"flag"
	"io"
	"log"
	"net/http"

	"github.com/labstack/echo/v4"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:18080", "listen address")
	flag.Parse()

	e := echo.New()
	e.HideBanner = true
	e.HidePort = true
	e.POST("/bubblehouse/:name", func(c echo.Context) error {
		if _, err := io.ReadAll(c.Request().Body); err != nil {
			return err
		}
		return c.JSONBlob(http.StatusOK, []byte(`{"ok":true}`))
	})
	if err := e.Start(*listen); err != nil && err != http.ErrServerClosed {
		log.Fatal(err)
	}
}
