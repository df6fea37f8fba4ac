"""The online service: storage (:mod:`clickloop.service.store`), HTTP API and update worker."""
