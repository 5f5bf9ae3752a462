from django.urls import path

from . import views

urlpatterns = [
    path("api/chat/openai", views.chat_openai, name="chat-openai"),
]
