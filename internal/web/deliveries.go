package web

import "net/http"

func (s *Server) routesDeliveries(mux *http.ServeMux) {}
