package web

import "net/http"

func (s *Server) routesNotifications(mux *http.ServeMux) {}
